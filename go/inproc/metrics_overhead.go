package inproc

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// The guide's HTTP metrics and MetricsMiddleware as printed (监控和分析 › 性能指标收集), in this
// package instead of its `package metrics`. Its database, cache and system metrics are left
// out: no request touches them. responseWriter, which the guide uses without declaring, is
// completed as such wrappers are written: it keeps the status WriteHeader was given.

// 性能指标定义
var (
	// HTTP指标
	httpRequestsTotal = promauto.NewCounterVec(
		prometheus.CounterOpts{
			Name: "http_requests_total",
			Help: "Total number of HTTP requests",
		},
		[]string{"method", "endpoint", "status"},
	)

	httpRequestDuration = promauto.NewHistogramVec(
		prometheus.HistogramOpts{
			Name:    "http_request_duration_seconds",
			Help:    "HTTP request duration in seconds",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		},
		[]string{"method", "endpoint"},
	)
)

type responseWriter struct {
	http.ResponseWriter
	statusCode int
}

func (rw *responseWriter) WriteHeader(code int) {
	rw.statusCode = code
	rw.ResponseWriter.WriteHeader(code)
}

// HTTP指标中间件
func MetricsMiddleware() func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()

			// 包装响应写入器以捕获状态码
			rw := &responseWriter{ResponseWriter: w, statusCode: 200}

			// 执行请求
			next.ServeHTTP(rw, r)

			// 记录指标
			duration := time.Since(start).Seconds()

			httpRequestsTotal.WithLabelValues(
				r.Method,
				r.URL.Path,
				fmt.Sprintf("%d", rw.statusCode),
			).Inc()

			httpRequestDuration.WithLabelValues(
				r.Method,
				r.URL.Path,
			).Observe(duration)
		})
	}
}

// RouteMetricsMiddleware is the fix: the guide's middleware with the endpoint label the route
// that matched (`/items/{id}`, from the ServeMux pattern it sets on the request) instead of
// the raw path, so that the series are as many as the routes.
func RouteMetricsMiddleware() func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			rw := &responseWriter{ResponseWriter: w, statusCode: 200}
			next.ServeHTTP(rw, r)
			duration := time.Since(start).Seconds()
			route := routeOf(r)
			httpRequestsTotal.WithLabelValues(r.Method, route, fmt.Sprintf("%d", rw.statusCode)).Inc()
			httpRequestDuration.WithLabelValues(r.Method, route).Observe(duration)
		})
	}
}

// routeOf is the path of the ServeMux pattern that matched r ("GET /items/{id}" → "/items/{id}").
func routeOf(r *http.Request) string {
	p := r.Pattern
	if i := strings.IndexByte(p, ' '); i >= 0 {
		p = p[i+1:]
	}
	return p
}

// PassMiddleware passes the request on: what the layer costs without metrics.
func PassMiddleware() func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r)
		})
	}
}

// itemsService is the port's service (experiments/metrics-overhead): GET /items/{id} answers
// {"id":N,"name":"item N"}.
func itemsService() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		w.Write([]byte(`{"id":` + id + `,"name":"item ` + id + `"}`))
	})
	return mux
}
