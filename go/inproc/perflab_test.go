package inproc

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// The contract with the harness (harness/src/micro/go.rs): it runs this package's test binary
// with -test.run=^$ -test.bench=^Benchmark<Name>$/^<variant>$ -test.benchtime=<N>x
// -test.benchmem -test.cpu=1, the sweep point's value in PERFLAB_POINT, and reads the
// benchmark's line: ns/op, B/op, allocs/op, and the metrics reported here (gc/op: garbage
// collections per call; items/op: what the per-item metrics divide by).

// pointValue is the sweep point's value the harness passes; a benchmark run by hand defaults
// to def.
func pointValue(b *testing.B, def float64) float64 {
	s := os.Getenv("PERFLAB_POINT")
	if s == "" {
		return def
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		b.Fatalf("PERFLAB_POINT=%q: %v", s, err)
	}
	return v
}

// point is pointValue as a count.
func point(b *testing.B, def int) int {
	return int(pointValue(b, float64(def)))
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

func BenchmarkLazyAlloc(b *testing.B) {
	// The point is the error rate in percent, as the port's sweep has it.
	users := Users(int(pointValue(b, 0)*10 + 0.5))
	s := &UserService{}
	b.Run("eager", func(b *testing.B) {
		measure(b, len(users), func() []error { return s.ValidateUsersEager(users) })
	})
	b.Run("guide-lazy", func(b *testing.B) {
		measure(b, len(users), func() []error { return s.ValidateUsers(users) })
	})
}

func TestLazyAndEagerFindTheSameErrors(t *testing.T) {
	s := &UserService{}
	for _, c := range []struct{ permille, want int }{{0, 0}, {10, 10}, {500, 500}, {1000, 1000}} {
		u := Users(c.permille)
		lazy, eager := s.ValidateUsers(u), s.ValidateUsersEager(u)
		if len(lazy) != c.want || len(eager) != c.want {
			t.Fatalf("%d permille: %d lazy, %d eager errors, want %d", c.permille, len(lazy), len(eager), c.want)
		}
	}
	if s.ValidateUsers(Users(0)) != nil {
		t.Fatal("no error, no list")
	}
	// The same users fail as in the Rust port (experiments/lazy-alloc: users): at 10 per mille,
	// users 99, 199, ..., 999.
	errs := s.ValidateUsers(Users(10))
	for k, err := range errs {
		want := "user user_" + pad6(100*k+99) + ": invalid email"
		if err.Error() != want {
			t.Fatalf("error %d: %q, want %q", k, err.Error(), want)
		}
	}
}

func BenchmarkSlicePrealloc(b *testing.B) {
	data := Dataset(point(b, 1000))
	b.Run("append", func(b *testing.B) {
		measure(b, len(data), func() []ProcessedItem { return ProcessLargeDatasetAppend(data) })
	})
	b.Run("guide-make-cap", func(b *testing.B) {
		measure(b, len(data), func() []ProcessedItem { return ProcessLargeDataset(data) })
	})
}

func TestBothWaysProcessTheSameItems(t *testing.T) {
	for _, n := range []int{0, 1, 10, 1000} {
		data := Dataset(n)
		a, g := ProcessLargeDatasetAppend(data), ProcessLargeDataset(data)
		if len(a) != n || len(g) != n {
			t.Fatalf("%d items: %d appended, %d with capacity", n, len(a), len(g))
		}
		for i := range a {
			if a[i] != g[i] {
				t.Fatalf("%d items: item %d differs", n, i)
			}
		}
	}
	if cap(ProcessLargeDataset(Dataset(1000))) != 1000 {
		t.Fatal("the guide's slice is made with room for every item")
	}
}

func BenchmarkObjectPool(b *testing.B) {
	ids := UserIDs(point(b, 10))
	ctx := context.Background()
	for _, v := range []struct {
		name    string
		process func(*UserService, context.Context, []string) ([]*User, error)
	}{
		{"allocate", (*UserService).ProcessUsersAllocate},
		{"pool-returned", (*UserService).ProcessUsersPutAfterUse},
		{"guide-deferred", (*UserService).ProcessUsers},
	} {
		b.Run(v.name, func(b *testing.B) {
			// One service per variant, its pool living across calls as a service's does.
			s := NewPoolService()
			measure(b, len(ids), func() []*User {
				users, err := v.process(s, ctx, ids)
				if err != nil {
					b.Fatal(err)
				}
				return users
			})
		})
	}
}

func TestEveryWayLoadsTheSameUsersAsThePort(t *testing.T) {
	ctx := context.Background()
	ids := UserIDs(50)
	s := NewPoolService()
	want, err := s.ProcessUsersAllocate(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	sameUsers(t, ctx, ids, want, map[string]processUsers{"pool-returned": s.ProcessUsersPutAfterUse, "guide-deferred": s.ProcessUsers})
	// The Rust port's load_user (experiments/object-pool) makes the same strings.
	if u := *want[3]; u.ID != "00000000-0000-4000-8000-000000000016" || u.Username != "user_00000022" ||
		u.Email != "user22@example.com" || u.Status != "active" || u.CreatedAt.Format(time.RFC3339) != "2025-01-23T00:00:00Z" {
		t.Fatalf("user 3 (id 22) is %+v", u)
	}
	if *s.userPool.Get() != (User{}) {
		t.Fatal("a pooled user comes back reset")
	}
	if _, err := s.ProcessUsers(ctx, []string{"x"}); err == nil {
		t.Fatal("a bad id is an error")
	}
}

// processUsers is a way of loading users by id.
type processUsers = func(context.Context, []string) ([]*User, error)

// sameUsers checks that every way loads want for ids, in order.
func sameUsers(t *testing.T, ctx context.Context, ids []string, want []*User, ways map[string]processUsers) {
	t.Helper()
	for name, process := range ways {
		got, err := process(ctx, ids)
		if err != nil || len(got) != len(want) {
			t.Fatalf("%s: %d users, %v", name, len(got), err)
		}
		for i := range got {
			if *got[i] != *want[i] {
				t.Fatalf("%s: user %d is %+v, want %+v", name, i, *got[i], *want[i])
			}
		}
	}
}
