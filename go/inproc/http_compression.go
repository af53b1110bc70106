package inproc

import (
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// The guide's CompressionMiddleware as printed (HTTP服务优化 › 响应压缩中间件).

// 响应压缩中间件
func CompressionMiddleware() func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// 检查客户端是否支持压缩
			if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
				next.ServeHTTP(w, r)
				return
			}

			// 设置压缩响应头
			w.Header().Set("Content-Encoding", "gzip")
			w.Header().Set("Vary", "Accept-Encoding")

			// 创建gzip写入器
			gz := gzip.NewWriter(w)
			defer gz.Close()

			// 包装响应写入器
			gzw := &gzipResponseWriter{
				ResponseWriter: w,
				Writer:         gz,
			}

			next.ServeHTTP(gzw, r)
		})
	}
}

type gzipResponseWriter struct {
	http.ResponseWriter
	io.Writer
}

func (w *gzipResponseWriter) Write(b []byte) (int, error) {
	return w.Writer.Write(b)
}

// GzipMiddleware is the fix a Go engineer would write: the guide's middleware, with the
// handler's Content-Length (the uncompressed length) dropped from a gzip answer before its
// header goes out, so that net/http frames the compressed body itself.
func GzipMiddleware() func(http.Handler) http.Handler {
	guide := CompressionMiddleware()
	return func(next http.Handler) http.Handler {
		return guide(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(lengthlessGzip{w}, r)
		}))
	}
}

// lengthlessGzip drops the Content-Length of a gzip answer when its header is written.
type lengthlessGzip struct {
	http.ResponseWriter
}

func (w lengthlessGzip) drop() {
	if h := w.Header(); h.Get("Content-Encoding") == "gzip" {
		h.Del("Content-Length")
	}
}

func (w lengthlessGzip) WriteHeader(code int) {
	w.drop()
	w.ResponseWriter.WriteHeader(code)
}

func (w lengthlessGzip) Write(b []byte) (int, error) {
	w.drop()
	return w.ResponseWriter.Write(b)
}

// compressionBody is the port's body (experiments/http-compression, body_of): JSON-like user
// records, cut at size bytes.
func compressionBody(size int) []byte {
	var s strings.Builder
	s.Grow(size + 200)
	s.WriteByte('[')
	for i := 0; s.Len() < size; i++ {
		status := "active"
		if i%7 == 0 {
			status = "inactive"
		}
		fmt.Fprintf(&s, `{"id":%d,"name":"user %d","email":"user%d@example.com","status":"%s","created_at":"2024-%02d-%02dT%02d:%02d:00Z","score":%d},`,
			i, i, i, status, 1+i%12, 1+i%28, i%24, (i*7)%60, (i*7919)%1000)
	}
	return []byte(s.String()[:size])
}
