package inproc

import (
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// The contract for whole-sample benchmarks (harness/src/micro/go.rs, run_sample): the harness
// runs the benchmark once (-test.benchtime=1x) with the point in PERFLAB_POINT and
// PERFLAB_POINT_LABEL and the settings' times in PERFLAB_WARMUP_NS and PERFLAB_DURATION_NS;
// the benchmark warms up, measures, and prints one line, "perflab-sample " and a JSON object
// with the experiment's metrics by name, failed operations by kind and a latency summary.

// sampleTimes are the settings' warm-up and measured time (by hand: 100 ms and 1 s).
func sampleTimes(b *testing.B) (warmup, duration time.Duration) {
	get := func(name string, def time.Duration) time.Duration {
		s := os.Getenv(name)
		if s == "" {
			return def
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			b.Fatalf("%s=%q is not a duration in nanoseconds", name, s)
		}
		return time.Duration(n)
	}
	return get("PERFLAB_WARMUP_NS", 100*time.Millisecond), get("PERFLAB_DURATION_NS", time.Second)
}

// pointLabel is the sweep point's label (by hand: def).
func pointLabel(def string) string {
	if s := os.Getenv("PERFLAB_POINT_LABEL"); s != "" {
		return s
	}
	return def
}

// latencySummary is the lab's LatencySummary (harness/src/results.rs), in microseconds.
type latencySummary struct {
	Count         uint64       `json:"count"`
	MinUs         float64      `json:"min_us"`
	MeanUs        float64      `json:"mean_us"`
	MaxUs         float64      `json:"max_us"`
	PercentilesUs [][2]float64 `json:"percentiles_us"`
}

// histogram counts nanosecond values in log-linear buckets (128 per power of two: within
// 0.8 %), fixed in size, so recording allocates nothing.
type histogram struct {
	counts   [58 * subBuckets]uint64
	n, sum   uint64
	min, max uint64
	minSet   bool
}

// subBuckets per power of two (a power of two itself).
const subBuckets = 128

func bucketOf(v uint64) int {
	if v < subBuckets {
		return int(v)
	}
	e := bits.Len64(v) - 8 // v >> e has 8 bits: 128..255
	return (e+1)*subBuckets + int(v>>uint(e)) - subBuckets
}

// bucketValue is the lowest value of bucket i, the inverse of bucketOf.
func bucketValue(i int) uint64 {
	if i < subBuckets {
		return uint64(i)
	}
	e := i/subBuckets - 1
	return uint64(i%subBuckets+subBuckets) << uint(e)
}

// bucketTop is the highest value of bucket i.
func bucketTop(i int) uint64 {
	if i+1 >= 58*subBuckets {
		return math.MaxUint64
	}
	return bucketValue(i+1) - 1
}

func (h *histogram) record(ns uint64) {
	h.counts[bucketOf(ns)]++
	h.n++
	h.sum += ns
	if !h.minSet || ns < h.min {
		h.min, h.minSet = ns, true
	}
	if ns > h.max {
		h.max = ns
	}
}

func (h *histogram) add(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.sum += o.sum
	if o.n > 0 {
		if !h.minSet || o.min < h.min {
			h.min, h.minSet = o.min, true
		}
		if o.max > h.max {
			h.max = o.max
		}
	}
	h.n += o.n
}

// quantile is the value at q (0..1), in nanoseconds: the highest value of its bucket, as
// hdrhistogram's value_at_quantile gives (within the values seen).
func (h *histogram) quantile(q float64) uint64 {
	// The rank, rounded up, with room for q's binary rounding (0.999 * 1000 is 999, not 1000).
	want := uint64(math.Ceil(q*float64(h.n) - 1e-9))
	if want == 0 {
		want = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= want {
			return min(max(bucketTop(i), h.min), h.max)
		}
	}
	return h.max
}

func (h *histogram) summary() *latencySummary {
	if h.n == 0 {
		return nil
	}
	s := &latencySummary{Count: h.n, MinUs: float64(h.min) / 1e3, MeanUs: float64(h.sum) / float64(h.n) / 1e3, MaxUs: float64(h.max) / 1e3}
	for _, p := range []float64{50, 75, 90, 95, 99, 99.9, 99.99, 99.999} {
		s.PercentilesUs = append(s.PercentilesUs, [2]float64{p, float64(h.quantile(p/100)) / 1e3})
	}
	return s
}

// emit prints the sample's line. A metric that is not a number fails the benchmark.
func emit(b *testing.B, metrics map[string]float64, errors map[string]uint64, latency *latencySummary) {
	for k, v := range metrics {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			b.Fatalf("metric %s is %v", k, v)
		}
	}
	// What this process used, from its start: it is the harness of this sample.
	type process struct {
		CPUS         float64 `json:"cpu_s"`
		PeakRSSBytes uint64  `json:"peak_rss_bytes"`
	}
	line, err := json.Marshal(struct {
		Metrics map[string]float64 `json:"metrics"`
		Errors  map[string]uint64  `json:"errors,omitempty"`
		Latency *latencySummary    `json:"latency,omitempty"`
		Process process            `json:"process"`
	}{metrics, errors, latency, process{cpuSeconds(), peakRSSBytes()}})
	if err != nil {
		b.Fatal(err)
	}
	fmt.Printf("perflab-sample %s\n", line)
}

// peakRSSBytes is this process's peak resident memory so far.
func peakRSSBytes() uint64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return uint64(ru.Maxrss) * 1024
}

// cpuSeconds is the CPU time (user and system) this process has used.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return math.NaN()
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func TestTheHistogramFindsQuantilesWithinItsPrecision(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 123456, 1 << 40, math.MaxUint64} {
		i := bucketOf(v)
		lo, hi := bucketValue(i), bucketTop(i)
		if lo > v || hi < v || float64(hi-lo) > 0.008*float64(v)+1 {
			t.Fatalf("%d lands in bucket %d, %d..%d", v, i, lo, hi)
		}
	}
	var h histogram
	for v := uint64(1); v <= 10000; v++ {
		h.record(v * 100)
	}
	for _, c := range []struct {
		q    float64
		want float64
	}{{0.5, 500000}, {0.99, 990000}, {0.999, 999000}, {1, 1000000}} {
		got := float64(h.quantile(c.q))
		if got < c.want || got > 1.008*c.want {
			t.Fatalf("quantile %v: %v, want %v", c.q, got, c.want)
		}
	}
	if s := h.summary(); s.Count != 10000 || s.MinUs != 0.1 || s.MaxUs != 1000 || math.Abs(s.MeanUs-500.05) > 1e-9 {
		t.Fatalf("summary %+v", s)
	}
	var empty histogram
	if empty.summary() != nil {
		t.Fatal("no values, no summary")
	}
}
