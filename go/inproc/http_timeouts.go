package inproc

import (
	"net/http"
	"time"
)

// The guide's server settings as printed (HTTP服务优化 › 连接池优化).

// HTTP服务器优化配置
func NewOptimizedHTTPServer(handler http.Handler) *http.Server {
	return &http.Server{
		Handler: handler,

		// 超时配置
		ReadTimeout:       10 * time.Second,
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       120 * time.Second,

		// 缓冲区大小
		MaxHeaderBytes: 1 << 20, // 1MB
	}
}

// scaledTimeouts is the guide's server with every timeout scaled by header / its
// ReadHeaderTimeout, as the port scales its own (experiments/http-timeouts: a fifth of the
// measured window, so that the timeouts fire within a sample).
func scaledTimeouts(handler http.Handler, header time.Duration) *http.Server {
	s := NewOptimizedHTTPServer(handler)
	scale := func(d time.Duration) time.Duration {
		return time.Duration(float64(d) * float64(header) / float64(s.ReadHeaderTimeout))
	}
	s.ReadTimeout, s.WriteTimeout, s.IdleTimeout = scale(s.ReadTimeout), scale(s.WriteTimeout), scale(s.IdleTimeout)
	s.ReadHeaderTimeout = header
	return s
}
