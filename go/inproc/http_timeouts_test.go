package inproc

import (
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

// connTracker follows the server's connections through net/http's ConnState hook: those open,
// and those its timeouts closed. net/http does not say why it closed a connection, so a close
// is a timeout's when the connection had waited at least nine tenths of that timeout: for a
// header (from its accept, or its last answer, to the close while a request was being read,
// StateNew or StateActive) or idle (from its last answer to the close, StateIdle). A client
// closing its own connection does so sooner than either (the harness's normal clients close
// when the load ends, its slow clients only when stopped, after the server reported).
type connTracker struct {
	mu           sync.Mutex
	waiting      map[net.Conn]connWait
	open         int64
	header, idle time.Duration
	headerCut    int64
	idleCut      int64
}

type connWait struct {
	state http.ConnState
	since time.Time
}

func (t *connTracker) hook(c net.Conn, s http.ConnState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	switch s {
	case http.StateNew, http.StateIdle:
		if s == http.StateNew {
			t.open++
		}
		t.waiting[c] = connWait{s, now}
	case http.StateActive:
		// A request's bytes arrived: the wait it ends began at the accept or the last answer.
		w := t.waiting[c]
		t.waiting[c] = connWait{s, w.since}
	case http.StateClosed, http.StateHijacked:
		t.open--
		w := t.waiting[c]
		delete(t.waiting, c)
		if t.header <= 0 {
			return
		}
		waited := now.Sub(w.since)
		switch {
		case w.state != http.StateIdle && waited >= t.header*9/10:
			t.headerCut++
		case w.state == http.StateIdle && waited >= t.idle*9/10:
			t.idleCut++
		}
	}
}

// headerTimeout is the port's scaled ReadHeaderTimeout, from PERFLAB_HEADER_TIMEOUT_NS (by
// hand: 200 ms, a full run's).
func headerTimeout(b *testing.B) time.Duration {
	s := os.Getenv("PERFLAB_HEADER_TIMEOUT_NS")
	if s == "" {
		return 200 * time.Millisecond
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		b.Fatalf("PERFLAB_HEADER_TIMEOUT_NS=%q is not a duration in nanoseconds", s)
	}
	return time.Duration(n)
}

// BenchmarkTimeoutsServer serves the port's answer ("ok" to any request) for the harness's
// load and slow clients to drive (serve_test.go): net/http's zero values (no-timeouts) or the
// guide's NewOptimizedHTTPServer with every timeout scaled as the port scales its own
// (guide-timeouts); it reports the connections open when the load ended and the cuts its
// timeouts made, per second of serving.
func BenchmarkTimeoutsServer(b *testing.B) {
	for _, name := range []string{"no-timeouts", "guide-timeouts"} {
		b.Run(name, func(b *testing.B) {
			handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
			server := &http.Server{Handler: handler}
			t := &connTracker{waiting: map[net.Conn]connWait{}}
			if name == "guide-timeouts" {
				server = scaledTimeouts(handler, headerTimeout(b))
				t.header, t.idle = server.ReadHeaderTimeout, server.IdleTimeout
			}
			server.ConnState = t.hook
			started := time.Now()
			serveOn(b, server, nil, func(m map[string]float64) {
				t.mu.Lock()
				defer t.mu.Unlock()
				elapsed := time.Since(started).Seconds()
				m["open_connections"] = float64(max(t.open, 0))
				m["header_cut"] = float64(t.headerCut)
				m["idle_cut"] = float64(t.idleCut)
				m["serving_s"] = elapsed
			})
		})
	}
}

// The guide's server scaled keeps its proportions; the tracker counts a close after a header
// wait as a header cut and a quick close as none.
func TestTimeoutsScaleAndCutsAreTold(t *testing.T) {
	s := scaledTimeouts(nil, 30*time.Millisecond)
	if s.ReadHeaderTimeout != 30*time.Millisecond || s.IdleTimeout != 720*time.Millisecond || s.ReadTimeout != 60*time.Millisecond || s.WriteTimeout != 60*time.Millisecond {
		t.Fatalf("scaled: %v %v %v %v", s.ReadHeaderTimeout, s.IdleTimeout, s.ReadTimeout, s.WriteTimeout)
	}
	tr := &connTracker{waiting: map[net.Conn]connWait{}, header: 20 * time.Millisecond, idle: 40 * time.Millisecond}
	a, b := &net.TCPConn{}, &net.IPConn{}
	tr.hook(a, http.StateNew)
	tr.hook(b, http.StateNew)
	tr.hook(b, http.StateClosed)
	time.Sleep(25 * time.Millisecond)
	tr.hook(a, http.StateActive)
	tr.hook(a, http.StateClosed)
	if tr.headerCut != 1 || tr.idleCut != 0 || tr.open != 0 {
		t.Fatalf("header cuts %d, idle cuts %d, open %d", tr.headerCut, tr.idleCut, tr.open)
	}
}
