package inproc

import (
	"fmt"
	"math"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// splitMix64 is the harness's SplitMix64 (harness/src/stats.rs), so that the Go originals draw
// the same keys and the same reads and writes as the Rust port.
type splitMix64 uint64

func (s *splitMix64) next() uint64 {
	*s += 0x9E3779B97F4A7C15
	z := uint64(*s)
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// keyTable is the port's key_table: 1<<16 keys drawn with seed, uniform over MapKeys or Zipf
// (s = 0.99, key 0 the hottest) by inverting the cumulative distribution.
func keyTable(zipf bool, seed uint64) []uint64 {
	const n = 1 << 16
	rng := splitMix64(seed)
	out := make([]uint64, n)
	if !zipf {
		for i := range out {
			out[i] = (rng.next() >> 32) % MapKeys
		}
		return out
	}
	cdf := make([]float64, MapKeys)
	total := 0.0
	for r := range cdf {
		total += math.Pow(float64(r+1), -0.99)
		cdf[r] = total
	}
	for i := range out {
		u := float64(rng.next()>>11) / float64(uint64(1)<<53) * total
		out[i] = uint64(min(sort.SearchFloat64s(cdf, u), MapKeys-1))
	}
	return out
}

// mapPoint reads the port's point label ("95% reads, 2 threads, Zipf keys").
func mapPoint(b *testing.B, label string) (readPct uint64, threads int, zipf bool) {
	var pct, n int
	var rest string
	fields := strings.SplitN(label, ", ", 3)
	if len(fields) < 2 {
		b.Fatalf("point %q is not the port's", label)
	}
	if _, err := fmt.Sscanf(fields[0], "%d%% reads", &pct); err != nil {
		b.Fatalf("point %q: %v", label, err)
	}
	if _, err := fmt.Sscanf(fields[1], "%d thread", &n); err != nil {
		b.Fatalf("point %q: %v", label, err)
	}
	if len(fields) == 3 {
		rest = fields[2]
	}
	return uint64(pct), n, rest == "Zipf keys"
}

// latencyEvery is the port's LATENCY_EVERY: one operation in 32 is timed.
const latencyEvery = 32

type mapWorker struct {
	ops, misses uint64
	hist        histogram
}

// runMapWorker is the port's worker: warm up, then a closed loop of operations until the
// measured time ends, one in 32 timed.
func runMapWorker(m SharedMap, values []string, seed uint64, keys []uint64, readPct uint64, warmup, duration time.Duration, w *mapWorker) {
	rng := splitMix64(seed)
	at := 0
	op := func() bool {
		at = (at + 1) & (len(keys) - 1)
		k := keys[at]
		if rng.next()%100 < readPct {
			_, ok := m.ReadLen(k)
			return ok
		}
		m.Store(k, values[k])
		return true
	}
	for warmUntil := time.Now().Add(warmup); time.Now().Before(warmUntil); {
		for i := 0; i < 256; i++ {
			op()
		}
	}
	end := time.Now().Add(duration)
	for {
		for i := 0; i < latencyEvery-1; i++ {
			if !op() {
				w.misses++
			}
		}
		t := time.Now()
		if !op() {
			w.misses++
		}
		now := time.Now()
		w.hist.record(uint64(max(now.Sub(t).Nanoseconds(), 1)))
		w.ops += latencyEvery
		if !now.Before(end) {
			return
		}
	}
}

// BenchmarkConcurrentMap is a whole-sample benchmark (sample_test.go) measuring what the Rust
// port's run measures (experiments/concurrent-map): throughput of all threads, the latency of
// one operation in 32, and the allocations per operation.
func BenchmarkConcurrentMap(b *testing.B) {
	for _, kind := range []string{"rwmutex", "mutex", "guide-sync-map", "sharded"} {
		b.Run(kind, func(b *testing.B) {
			readPct, threads, zipf := mapPoint(b, pointLabel("95% reads, 2 threads, Zipf keys"))
			warmup, duration := sampleTimes(b)
			m := NewSharedMap(kind)
			values := make([]string, MapKeys)
			for k := range values {
				values[k] = MapValue(uint64(k))
			}
			tables := make([][]uint64, threads)
			for t := range tables {
				tables[t] = keyTable(zipf, uint64(1+t))
			}
			workers := make([]mapWorker, threads)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			started := time.Now()
			var wg sync.WaitGroup
			for t := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					runMapWorker(m, values, uint64(1+t), tables[t], readPct, warmup, duration, &workers[t])
				}()
			}
			wg.Wait()
			measured := max(time.Since(started)-warmup, time.Nanosecond)
			runtime.ReadMemStats(&after)
			var all histogram
			var ops, misses, minOps, maxOps uint64
			for t := range workers {
				w := &workers[t]
				all.add(&w.hist)
				ops += w.ops
				misses += w.misses
				if t == 0 || w.ops < minOps {
					minOps = w.ops
				}
				maxOps = max(maxOps, w.ops)
			}
			ok := ops - misses
			mean := float64(ops) / float64(threads)
			lat := all.summary()
			// Allocations over warm-up and measured time alike, per operation; the warm-up's
			// operations are not counted, so the count is scaled by the measured share.
			allocs := float64(after.Mallocs-before.Mallocs) * measured.Seconds() / time.Since(started).Seconds() / float64(max(ops, 1))
			bytes := float64(after.TotalAlloc-before.TotalAlloc) * measured.Seconds() / time.Since(started).Seconds() / float64(max(ops, 1))
			metrics := map[string]float64{
				"ops_per_sec":          float64(ok) / measured.Seconds(),
				"ok":                   float64(ok),
				"errors":               float64(misses),
				"error_rate":           float64(misses) / float64(max(ops, 1)),
				"threads":              float64(threads),
				"workers":              float64(threads),
				"worker_ops_min":       float64(minOps),
				"worker_ops_max":       float64(maxOps),
				"worker_ops_min_share": float64(minOps) / math.Max(mean, 1),
				"allocs_per_item":      allocs,
				"allocs_per_call":      allocs * 1000,
				"bytes_per_item":       bytes,
				"bytes_per_call":       bytes * 1000,
			}
			if lat != nil {
				metrics["latency_mean_us"] = lat.MeanUs
				metrics["latency_max_us"] = lat.MaxUs
				for _, p := range []struct {
					q    float64
					name string
				}{{0.5, "p50"}, {0.9, "p90"}, {0.95, "p95"}, {0.99, "p99"}} {
					metrics["latency_"+p.name+"_us"] = float64(all.quantile(p.q)) / 1e3
				}
			}
			var errs map[string]uint64
			if misses > 0 {
				errs = map[string]uint64{"key missing": misses}
			}
			emit(b, metrics, errs, lat)
		})
	}
}

func TestEveryMapReadsBackWhatWasStoredFromManyGoroutines(t *testing.T) {
	for _, kind := range []string{"rwmutex", "mutex", "guide-sync-map", "sharded"} {
		m := NewSharedMap(kind)
		var wg sync.WaitGroup
		for g := uint64(0); g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := g; k < MapKeys; k += 4 {
					m.Store(k, "v"+strings.Repeat("x", int(k%7)))
				}
			}()
		}
		wg.Wait()
		for _, k := range []uint64{0, 1, 4999, MapKeys - 1} {
			if n, ok := m.ReadLen(k); !ok || n != 1+int(k%7) {
				t.Fatalf("%s: key %d has length %d (%v)", kind, k, n, ok)
			}
		}
		if _, ok := m.ReadLen(MapKeys); ok {
			t.Fatalf("%s: a key never stored is there", kind)
		}
	}
	if NewSharedMap("other") != nil {
		t.Fatal("an unknown kind is no map")
	}
}

func TestTheKeysAreThePortsKeys(t *testing.T) {
	// The port's SplitMix64 from seed 1 (harness/src/stats.rs) and its uniform first key.
	r := splitMix64(1)
	if got := r.next(); got != 0x910a2dec89025cc1 {
		t.Fatalf("SplitMix64(1) first value %#x", got)
	}
	top := func(tbl []uint64) float64 {
		n := 0
		for _, k := range tbl {
			if k < 10 {
				n++
			}
		}
		return float64(n) / float64(len(tbl))
	}
	if s := top(keyTable(true, 3)); s < 0.2 || s > 0.4 {
		t.Fatalf("Zipf keys: the 10 hottest draw %v", s)
	}
	if s := top(keyTable(false, 3)); s > 0.01 {
		t.Fatalf("uniform keys: the 10 lowest draw %v", s)
	}
	if !strings.Contains(MapValue(3), `"email":"User3@Example.com"`) || len(MapValue(12)) != len(MapValue(13)) {
		t.Fatalf("values: %s", MapValue(3))
	}
}
