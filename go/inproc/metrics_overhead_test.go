package inproc

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// metricsVariants are metrics-overhead's Go originals: the service alone, behind a middleware
// that passes the request on, behind the guide's metrics labelled by route, and behind the
// guide's MetricsMiddleware as printed (labelled by the raw path).
var metricsVariants = map[string]func(http.Handler) http.Handler{
	"none":            nil,
	"noop-middleware": PassMiddleware(),
	"route-template":  RouteMetricsMiddleware(),
	"guide-raw-path":  MetricsMiddleware(),
}

// scrape encodes the default registry (what the guide's promhttp.Handler would serve) as
// Prometheus text: the series of http_requests_total, the bytes, and the time to encode.
func scrape() (series int, size int, took time.Duration, err error) {
	var buf bytes.Buffer
	start := time.Now()
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		return 0, 0, 0, err
	}
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			return 0, 0, 0, err
		}
		if f.GetName() == "http_requests_total" {
			series = len(f.GetMetric())
		}
	}
	return series, buf.Len(), time.Since(start), nil
}

// BenchmarkMetricsServer serves the port's service behind the variant's middleware for the
// harness's load engine to drive (serve_test.go), a new process and so a new default registry
// per sample, and reports the port's scrape metrics once the load is over.
func BenchmarkMetricsServer(b *testing.B) {
	for _, name := range []string{"none", "noop-middleware", "route-template", "guide-raw-path"} {
		b.Run(name, func(b *testing.B) {
			var handler http.Handler = itemsService()
			if mw := metricsVariants[name]; mw != nil {
				handler = mw(handler)
			}
			serve(b, handler, func(m map[string]float64) {
				series, size, took, err := scrape()
				if err != nil {
					b.Fatal(err)
				}
				m["series"] = float64(series)
				m["scrape_kb"] = float64(size) / 1024
				m["scrape_ms"] = took.Seconds() * 1e3
			})
		})
	}
}

// The service answers the port's body; the guide's middleware makes a series per path, the
// route labelling one per route.
func TestMetricsMiddlewaresLabelAsTheyShould(t *testing.T) {
	for _, name := range []string{"none", "noop-middleware", "route-template", "guide-raw-path"} {
		httpRequestsTotal.Reset()
		httpRequestDuration.Reset()
		var handler http.Handler = itemsService()
		if mw := metricsVariants[name]; mw != nil {
			handler = mw(handler)
		}
		for _, path := range []string{"/items/1", "/items/2", "/items/3", "/items/1"} {
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
			if want := `{"id":` + path[7:] + `,"name":"item ` + path[7:] + `"}`; rec.Code != 200 || rec.Body.String() != want {
				t.Fatalf("%s %s: %d %q", name, path, rec.Code, rec.Body.String())
			}
		}
		series, _, _, err := scrape()
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int{"none": 0, "noop-middleware": 0, "route-template": 1, "guide-raw-path": 3}[name]
		if series != want {
			t.Fatalf("%s: %d series, want %d", name, series, want)
		}
	}
	httpRequestsTotal.Reset()
	httpRequestDuration.Reset()
}
