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

// mapPoint reads the port's point label ("95% reads, 2 threads, Zipf keys"); a label the
// port does not have is refused, as its point_of refuses it.
func mapPoint(b *testing.B, label string) (readPct uint64, threads int, zipf bool) {
	var pct, n int
	fields := strings.Split(label, ", ")
	ok := len(fields) == 2 || len(fields) == 3 && fields[2] == "Zipf keys"
	if ok {
		_, err1 := fmt.Sscanf(fields[0], "%d%% reads", &pct)
		_, err2 := fmt.Sscanf(fields[1], "%d thread", &n)
		ok = err1 == nil && err2 == nil && pct >= 0 && pct <= 100 && n >= 1
	}
	if !ok {
		b.Fatalf("point %q is not one of the port's", label)
	}
	return uint64(pct), n, len(fields) == 3
}

// latencyEvery is the port's LATENCY_EVERY: one operation in 32 is timed.
const latencyEvery = 32

// mapWorker is what one thread did: its own allocation, so that no two threads write one
// cache line (the counters stay in locals until the end).
type mapWorker struct {
	ops, warmOps, misses uint64
	hist                 histogram
}

// runMapWorker is the port's worker: warm up, then a closed loop of operations until the
// measured time ends, one in 32 timed.
func runMapWorker(m SharedMap, values []string, seed uint64, keys []uint64, readPct uint64, warmup, duration time.Duration) *mapWorker {
	w := new(mapWorker)
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
	var ops, warmOps, misses uint64
	for warmUntil := time.Now().Add(warmup); time.Now().Before(warmUntil); {
		for i := 0; i < 256; i++ {
			op()
		}
		warmOps += 256
	}
	end := time.Now().Add(duration)
	for {
		for i := 0; i < latencyEvery-1; i++ {
			if !op() {
				misses++
			}
		}
		t := time.Now()
		if !op() {
			misses++
		}
		now := time.Now()
		w.hist.record(uint64(max(now.Sub(t).Nanoseconds(), 1)))
		ops += latencyEvery
		if !now.Before(end) {
			break
		}
	}
	w.ops, w.warmOps, w.misses = ops, warmOps, misses
	return w
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
			workers := make([]*mapWorker, threads)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			started := time.Now()
			var wg sync.WaitGroup
			for t := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					workers[t] = runMapWorker(m, values, uint64(1+t), tables[t], readPct, warmup, duration)
				}()
			}
			wg.Wait()
			measured := max(time.Since(started)-warmup, time.Nanosecond)
			runtime.ReadMemStats(&after)
			var all histogram
			var ops, warmOps, misses, minOps, maxOps uint64
			for t, w := range workers {
				all.add(&w.hist)
				ops += w.ops
				warmOps += w.warmOps
				misses += w.misses
				if t == 0 || w.ops < minOps {
					minOps = w.ops
				}
				maxOps = max(maxOps, w.ops)
			}
			// Every operation of warm-up and measured time alike is counted, so the allocations
			// per operation are exact (what the process's other goroutines allocate meanwhile,
			// the runtime's own, is in them too).
			done := float64(max(ops+warmOps, 1))
			allocs := float64(after.Mallocs-before.Mallocs) / done
			bytes := float64(after.TotalAlloc-before.TotalAlloc) / done
			metrics := loadMetrics(ops-misses, misses, measured, &all, minOps, maxOps, threads)
			metrics["threads"] = float64(threads)
			metrics["allocs_per_item"] = allocs
			metrics["allocs_per_call"] = allocs * 1000
			metrics["bytes_per_item"] = bytes
			metrics["bytes_per_call"] = bytes * 1000
			lat := all.summary()
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
	// The port's tables from seed 1 (experiments/concurrent-map pins the same entries).
	u, z := keyTable(false, 1), keyTable(true, 1)
	for _, c := range []struct{ got, want []uint64 }{
		{[]uint64{u[0], u[1], u[2], u[3], u[4], u[65535]}, []uint64{3436, 8257, 5070, 8304, 2360, 7652}},
		{[]uint64{z[0], z[1], z[2], z[3], z[4], z[5], z[6], z[7], z[65535]}, []uint64{161, 907, 7627, 48, 48, 1068, 3165, 105, 0}},
	} {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Fatalf("key table entries %v, the port's %v", c.got, c.want)
		}
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
