package inproc

import (
	"bytes"
	"compress/gzip"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
)

// countingListener counts the connections the server accepts and the bytes it writes on them
// (what crosses the wire), each where its counter is not nil.
type countingListener struct {
	net.Listener
	accepted, written *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if l.accepted != nil {
		l.accepted.Add(1)
	}
	if l.written != nil {
		return countedConn{c, l.written}, nil
	}
	return c, nil
}

type countedConn struct {
	net.Conn
	written *atomic.Int64
}

func (c countedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.written.Add(int64(n))
	return n, err
}

// compressionService is the port's service for a variant: GET /data answers the body of size
// bytes, setting its own Content-Length (withLength) or only writing it, behind the
// variant's middleware (nil: none); answered and encoded count the answers and those that
// left with a Content-Encoding.
func compressionService(size int, withLength bool, mw func(http.Handler) http.Handler, answered, encoded *atomic.Int64) http.Handler {
	body := compressionBody(size)
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/data" {
			http.NotFound(w, r)
			return
		}
		answered.Add(1)
		w.Header().Set("Content-Type", "application/json")
		if withLength {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		}
		w.Write(body)
	})
	if mw != nil {
		h = mw(h)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		if w.Header().Get("Content-Encoding") != "" {
			encoded.Add(1)
		}
	})
}

// compressionVariants are http-compression's Go originals: the handler alone (it sets its
// Content-Length), the fix (gzip without the stale length), and the guide's middleware as
// printed around a handler that sets its length and around one that only writes.
var compressionVariants = map[string]struct {
	withLength bool
	mw         func(http.Handler) http.Handler
}{
	"identity":              {true, nil},
	"gzip-default":          {true, GzipMiddleware()},
	"guide-gzip":            {true, CompressionMiddleware()},
	"guide-gzip-write-only": {false, CompressionMiddleware()},
}

// BenchmarkCompressionServer serves the port's body (the point's size) behind the variant's
// middleware for the harness's load to drive (serve_test.go), and reports the bytes written
// on the wire and the answers, compressed or not, once the load is over.
func BenchmarkCompressionServer(b *testing.B) {
	for _, name := range []string{"identity", "gzip-default", "guide-gzip", "guide-gzip-write-only"} {
		b.Run(name, func(b *testing.B) {
			v := compressionVariants[name]
			var answered, encoded, written atomic.Int64
			handler := compressionService(point(b, 10000), v.withLength, v.mw, &answered, &encoded)
			serveOn(b, &http.Server{Handler: handler}, func(ln net.Listener) net.Listener { return countingListener{Listener: ln, written: &written} }, func(m map[string]float64) {
				m["answered"] = float64(answered.Load())
				m["encoded"] = float64(encoded.Load())
				m["written_bytes"] = float64(written.Load())
			})
		})
	}
}

// The body is the port's (both languages' tests pin its length and FNV-1a digest), each
// variant answers with it, compressed where it should be, and the guide's middleware around a
// handler that sets its length promises more bytes than it sends.
func TestCompressionVariantsAnswerThePortsBody(t *testing.T) {
	body := compressionBody(10000)
	if len(body) != 10000 || fnv1a(body) != 0x5faa65ab836a6d88 {
		t.Fatalf("the port's body: %d bytes, digest %#x", len(body), fnv1a(body))
	}
	for name, v := range compressionVariants {
		var answered, encoded atomic.Int64
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/data", nil)
		req.Header.Set("Accept-Encoding", "gzip")
		compressionService(10000, v.withLength, v.mw, &answered, &encoded).ServeHTTP(rec, req)
		got := rec.Body.Bytes()
		if v.mw != nil {
			zr, err := gzip.NewReader(bytes.NewReader(got))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if got, err = io.ReadAll(zr); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		if !bytes.Equal(got, body) || answered.Load() != 1 || encoded.Load() != map[bool]int64{true: 1, false: 0}[v.mw != nil] {
			t.Fatalf("%s: %d bytes decoded, %d answered, %d encoded", name, len(got), answered.Load(), encoded.Load())
		}
		stale := rec.Header().Get("Content-Length") == "10000" && v.mw != nil
		if stale != (name == "guide-gzip") {
			t.Fatalf("%s: Content-Length %q", name, rec.Header().Get("Content-Length"))
		}
	}
}

func fnv1a(p []byte) uint64 {
	h := uint64(0xcbf29ce484222325)
	for _, b := range p {
		h ^= uint64(b)
		h *= 0x100000001b3
	}
	return h
}
