package inproc

import (
	"context"
	"runtime"
	"sort"
	"testing"
	"time"
)

// BenchmarkRateLimiter is a whole-sample benchmark (sample_test.go) measuring what the Rust
// port's run measures (experiments/rate-limiter): the burst allowed right after creation, the
// rate a client waiting as fast as it can achieves over the measured time, the process's CPU
// while the limiter sits idle, the burst after idling, and one permit when nothing limits.
func BenchmarkRateLimiter(b *testing.B) {
	for _, v := range []struct {
		name string
		make func(rate int) Limiter
	}{
		{"x-time-rate", func(r int) Limiter { return NewXRate(r) }},
		{"guide-token-bucket", func(r int) Limiter { return NewRateLimiter(r) }},
	} {
		b.Run(v.name, func(b *testing.B) {
			rate := point(b, 1000)
			_, duration := sampleTimes(b)
			m := limiterSample(v.make(rate), rate, duration)
			for k, x := range unlimitedPermit(v.name) {
				m[k] = x
			}
			emit(b, m, nil, nil)
		})
	}
}

// drain takes permits available at once, until the first refusal (at most limit).
func drain(l Limiter, limit int) int {
	n := 0
	for n < limit && l.TryAcquire() {
		n++
	}
	return n
}

func limiterSample(l Limiter, rate int, duration time.Duration) map[string]float64 {
	ctx := context.Background()
	initial := drain(l, 10*rate)
	start := time.Now()
	granted := 0
	for time.Since(start) < duration {
		if l.Wait(ctx) == nil {
			granted++
		}
	}
	achieved := float64(granted) / time.Since(start).Seconds()
	idle := max(duration/2, 200*time.Millisecond)
	cpu, wall := cpuSeconds(), time.Now()
	time.Sleep(idle)
	idleCPU := (cpuSeconds() - cpu) / time.Since(wall).Seconds()
	afterIdle := drain(l, 10*rate)
	l.Close()
	r := float64(rate)
	errPct := (achieved - r) / r * 100
	if errPct < 0 {
		errPct = -errPct
	}
	return map[string]float64{
		"achieved_rate":    achieved,
		"achieved_ratio":   achieved / r,
		"rate_error_pct":   errPct,
		"initial_burst":    float64(initial),
		"burst_after_idle": float64(afterIdle),
		"idle_cpu_pct":     idleCPU * 100,
		"idle_s":           idle.Seconds(),
	}
}

// unlimitedPermit times one permit when nothing limits, after a warm-up: 21 batches of
// 10,000 calls, time_ns the median batch's time per call (criterion's time_ns is a median
// too), time_mean_ns the mean, with the allocations all the calls made.
func unlimitedPermit(name string) map[string]float64 {
	const batches, calls = 21, 10_000
	permit := Unlimited(name)
	for i := 0; i < calls; i++ {
		permit()
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	per := make([]float64, batches)
	for k := range per {
		start := time.Now()
		for i := 0; i < calls; i++ {
			permit()
		}
		per[k] = float64(time.Since(start).Nanoseconds()) / calls
	}
	runtime.ReadMemStats(&after)
	mean := 0.0
	for _, x := range per {
		mean += x / batches
	}
	sort.Float64s(per)
	median := per[batches/2]
	return map[string]float64{
		"time_ns":         median,
		"time_mean_ns":    mean,
		"calls_per_sec":   1e9 / median,
		"allocs_per_call": float64(after.Mallocs-before.Mallocs) / (batches * calls),
		"bytes_per_call":  float64(after.TotalAlloc-before.TotalAlloc) / (batches * calls),
	}
}

func TestBothLimitersStartFullAndThenGrantAtAboutTheirRate(t *testing.T) {
	for name, l := range map[string]Limiter{"guide": NewRateLimiter(200), "x-time-rate": NewXRate(200)} {
		if n := drain(l, 2000); n != 200 {
			t.Fatalf("%s: a burst of %d, want the rate's 200", name, n)
		}
		time.Sleep(200 * time.Millisecond)
		// 200/s: about 40 permits in 200 ms.
		if n := drain(l, 2000); n < 10 || n > 60 {
			t.Fatalf("%s: %d permits in 200 ms at 200/s", name, n)
		}
		l.Close()
	}
	for _, name := range []string{"guide-token-bucket", "x-time-rate"} {
		if !Unlimited(name)() {
			t.Fatalf("%s: a permit is granted when nothing limits", name)
		}
	}
}
