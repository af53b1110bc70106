package inproc

import (
	"sync"
	"testing"
	"time"
)

// The Go originals' closed loop, as the port's load engine runs one (harness/src/load.rs):
// clients each calling one operation after another, the warm-up's operations not recorded,
// the measured window's successes timed, failures counted by kind.

// operation is one client's call: nil, or the failure's kind.
type operation = func() (failure string)

type loadClient struct {
	ok uint64
	// measured is the operations started in the measured window.
	measured uint64
	errs     map[string]uint64
	hist     histogram
	pacing   histogram
}

// closedLoop runs clients (each made by newClient before the clock, on its own goroutine) for
// the warm-up and the measured time, and prints the sample: the port's load metrics, errors by
// kind and the latency of the successes; extra adds the experiment's own metrics.
func closedLoop(b *testing.B, clients int, newClient func(i int) operation, extra func(m map[string]float64, errs map[string]uint64, opsPerSec float64)) {
	runLoad(b, clients, 0, newClient, extra)
}

// bursts is the port's LoadConfig::bursts with as many requests per burst as clients: every
// period each client has one request due at the burst's start, and its latency counts from
// then, so a request sent late (its client still busy, or woken late) waits in its latency.
// How late the clients woke for a burst they were free for is burst_wake_lateness_*.
func bursts(b *testing.B, clients int, period time.Duration, newClient func(i int) operation, extra func(m map[string]float64, errs map[string]uint64, opsPerSec float64)) {
	runLoad(b, clients, period, newClient, extra)
}

// runLoad is closedLoop (period 0) or bursts.
func runLoad(b *testing.B, clients int, period time.Duration, newClient func(i int) operation, extra func(m map[string]float64, errs map[string]uint64, opsPerSec float64)) {
	warmup, duration := sampleTimes(b)
	calls := make([]operation, clients)
	for i := range calls {
		calls[i] = newClient(i)
	}
	cs := make([]*loadClient, clients)
	started := time.Now()
	warmEnd := started.Add(warmup)
	end := warmEnd.Add(duration)
	var wg sync.WaitGroup
	for c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each client's own allocation: no two clients write one cache line.
			me := &loadClient{errs: map[string]uint64{}}
			cs[c] = me
			call := calls[c]
			for k := 0; ; k++ {
				t := time.Now()
				if period > 0 {
					due := started.Add(time.Duration(k) * period)
					// No burst is due after the window: stop before waiting for one.
					if !due.Before(end) {
						return
					}
					if wait := due.Sub(t); wait > 0 {
						time.Sleep(wait)
						if now := time.Now(); !due.Before(warmEnd) && due.Before(end) {
							me.pacing.record(uint64(max(now.Sub(due).Nanoseconds(), 1)))
						}
					}
					t = due
				}
				// A client measures at least one operation, as the port's workers do, even one
				// whose warm-up ran past the window with a single long operation.
				if !t.Before(end) && me.measured > 0 {
					return
				}
				failure := call()
				done := time.Now()
				switch {
				case t.Before(warmEnd):
				case failure != "":
					me.measured++
					me.errs[failure]++
				default:
					me.measured++
					me.ok++
					me.hist.record(uint64(max(done.Sub(t).Nanoseconds(), 1)))
				}
			}
		}()
	}
	wg.Wait()
	measured := max(time.Since(warmEnd), time.Nanosecond)
	var all, pacing histogram
	var ok, failed, minOps, maxOps uint64
	errs := map[string]uint64{}
	for i, c := range cs {
		all.add(&c.hist)
		pacing.add(&c.pacing)
		ok += c.ok
		ops := c.ok
		for k, n := range c.errs {
			errs[k] += n
			failed += n
			ops += n
		}
		if i == 0 || ops < minOps {
			minOps = ops
		}
		maxOps = max(maxOps, ops)
	}
	m := loadMetrics(ok, failed, measured, &all, minOps, maxOps, clients)
	// Not the port's pacing_lateness_* (which its bursts do not report either, their latency
	// counting from the burst's start by design): how late Go's timers woke the clients.
	if pacing.n > 0 {
		m["burst_wake_lateness_p50_us"] = float64(pacing.quantile(0.5)) / 1e3
		m["burst_wake_lateness_p99_us"] = float64(pacing.quantile(0.99)) / 1e3
	}
	if extra != nil {
		extra(m, errs, m["ops_per_sec"])
	}
	emit(b, m, errs, all.summary())
}

// loadMetrics are the port's load engine's standard metrics (harness/src/load.rs,
// LoadReport::into_sample): throughput and latency of the successes, errors, worker spread.
func loadMetrics(ok, failed uint64, measured time.Duration, h *histogram, minOps, maxOps uint64, workers int) map[string]float64 {
	total := ok + failed
	m := map[string]float64{
		"ops_per_sec":    float64(ok) / measured.Seconds(),
		"ok":             float64(ok),
		"errors":         float64(failed),
		"error_rate":     0,
		"workers":        float64(workers),
		"worker_ops_min": float64(minOps),
		"worker_ops_max": float64(maxOps),
	}
	if total > 0 {
		m["error_rate"] = float64(failed) / float64(total)
	}
	mean := float64(total) / float64(max(workers, 1))
	m["worker_ops_min_share"] = 1
	if mean > 0 {
		m["worker_ops_min_share"] = float64(minOps) / mean
	}
	if h.n > 0 {
		m["latency_mean_us"] = float64(h.sum) / float64(h.n) / 1e3
		m["latency_max_us"] = float64(h.max) / 1e3
		for _, p := range []struct {
			q    float64
			name string
		}{{0.5, "p50"}, {0.9, "p90"}, {0.95, "p95"}, {0.99, "p99"}} {
			m["latency_"+p.name+"_us"] = float64(h.quantile(p.q)) / 1e3
		}
	}
	return m
}
