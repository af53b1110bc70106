package inproc

import (
	"os"
	"runtime"
	"strconv"
	"testing"
)

// The contract with the harness (harness/src/micro/go.rs): it runs this package's test binary
// with -test.run=^$ -test.bench=^Benchmark<Name>$/^<variant>$ -test.benchtime=<N>x
// -test.benchmem -test.cpu=1, the sweep point's value in PERFLAB_POINT, and reads the
// benchmark's line: ns/op, B/op, allocs/op, and the metrics reported here (gc/op: garbage
// collections per call; items/op: what the per-item metrics divide by).

// point is the sweep point's value the harness passes; a benchmark run by hand defaults to def.
func point(b *testing.B, def int) int {
	s := os.Getenv("PERFLAB_POINT")
	if s == "" {
		return def
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		b.Fatalf("PERFLAB_POINT=%q: %v", s, err)
	}
	return int(v)
}

// measure times b.N calls of call and reports the collections they caused and the items one
// call handles. The result stays typed (an interface would box it: one more allocation per
// call that is not the routine's) and alive, so the calls cannot be dropped.
func measure[T any](b *testing.B, items int, call func() T) {
	var before, after runtime.MemStats
	var result T
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		result = call()
	}
	b.StopTimer()
	runtime.KeepAlive(result)
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.NumGC-before.NumGC)/float64(b.N), "gc/op")
	b.ReportMetric(float64(items), "items/op")
}

// BenchmarkSynthetic is the harness's known-cost routine: alloc64 allocates exactly one
// 64-byte object per call, none allocates nothing.
func BenchmarkSynthetic(b *testing.B) {
	b.Run("alloc64", func(b *testing.B) {
		measure(b, 1, func() *[64]byte { return new([64]byte) })
	})
	b.Run("none", func(b *testing.B) {
		x := 0
		measure(b, 1, func() int { x++; return x })
	})
}

func BenchmarkStringBuilding(b *testing.B) {
	conditions := Conditions(point(b, 10))
	for _, v := range []struct {
		name  string
		build func([]string) string
	}{
		{"concat", BuildQueryConcat},
		{"guide-builder", BuildQuery},
		{"join", BuildQueryJoin},
	} {
		b.Run(v.name, func(b *testing.B) {
			measure(b, len(conditions), func() string { return v.build(conditions) })
		})
	}
}

func TestEveryBuilderBuildsTheSameQuery(t *testing.T) {
	for _, n := range []int{0, 1, 10, 100} {
		c := Conditions(n)
		want := BuildQuery(c)
		if got := BuildQueryConcat(c); got != want {
			t.Fatalf("concat at %d: %q", n, got)
		}
		if got := BuildQueryJoin(c); got != want {
			t.Fatalf("join at %d: %q", n, got)
		}
	}
	if got := BuildQuery(Conditions(2)); got != "SELECT * FROM users WHERE status = $1 AND created_at >= $2" {
		t.Fatalf("BuildQuery(2) = %q", got)
	}
}
