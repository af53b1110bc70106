package inproc

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// zipfAlias is the port's Zipf (experiments/multi-level-cache): Zipf(s) over ranks 1..=n as
// Walker's alias table by Vose's construction, the same arithmetic in the same order.
type zipfAlias struct {
	prob  []float64
	alias []uint32
}

func newZipfAlias(n int, s float64) *zipfAlias {
	weights := make([]float64, n)
	total := 0.0
	for k := range weights {
		weights[k] = 1 / math.Pow(float64(k+1), s)
	}
	for _, w := range weights {
		total += w
	}
	scaled := make([]float64, n)
	for i, w := range weights {
		scaled[i] = w * float64(n) / total
	}
	prob, alias := make([]float64, n), make([]uint32, n)
	for i := range prob {
		prob[i] = 1
	}
	var small, large []int
	for i := range scaled {
		if scaled[i] < 1 {
			small = append(small, i)
		} else {
			large = append(large, i)
		}
	}
	for len(small) > 0 && len(large) > 0 {
		l, g := small[len(small)-1], large[len(large)-1]
		small = small[:len(small)-1]
		prob[l] = scaled[l]
		alias[l] = uint32(g)
		scaled[g] -= 1 - scaled[l]
		if scaled[g] < 1 {
			large = large[:len(large)-1]
			small = append(small, g)
		}
	}
	for _, i := range append(large, small...) {
		prob[i] = 1
	}
	return &zipfAlias{prob, alias}
}

// draw is a rank, 0-based: one uniform index, one coin (the port's below and next_f64).
func (z *zipfAlias) draw(rng *splitMix64) int {
	i := int(rng.next() % uint64(len(z.prob)))
	if float64(rng.next()>>11)/float64(uint64(1)<<53) < z.prob[i] {
		return i
	}
	return int(z.alias[i])
}

// pgUsers is the guide's l3 on the run's Postgres: the user of a cache key (its id after the
// key's prefix) through the prepared getUserByID, as the cached form the port stores (id,
// username, email, created_at).
type pgUsers struct {
	stmt   *sql.Stmt
	prefix string
	reads  atomic.Int64
}

func (d *pgUsers) Get(ctx context.Context, key string) (interface{}, error) {
	d.reads.Add(1)
	var id, username, email string
	var created time.Time
	if err := d.stmt.QueryRowContext(ctx, key[len(d.prefix):]).Scan(&id, &username, &email, &created); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, errors.New("user missing")
		}
		return nil, err
	}
	return map[string]interface{}{
		"id": id, "username": username, "email": email, "created_at": created.UTC().Format("2006-01-02T15:04:05Z"),
	}, nil
}

// redisCounts counts, through a go-redis hook, the GETs a design sends and those that found a
// value, and the SETs that failed (the guide's background refill ignores them; the sample
// does not).
type redisCounts struct {
	gets, hits atomic.Int64
	// background: the SETs are the guide's background refills, which nobody else sees fail
	// (cache-aside returns its SET's error to the read, which counts it).
	background bool
	mu         sync.Mutex
	setErrors  map[string]uint64
}

func (r *redisCounts) DialHook(next redis.DialHook) redis.DialHook { return next }
func (r *redisCounts) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (r *redisCounts) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		switch cmd.Name() {
		case "get":
			r.gets.Add(1)
			if err == nil {
				r.hits.Add(1)
			}
		case "set":
			if err != nil && r.background {
				r.mu.Lock()
				r.setErrors["background refill: "+errorKind(err)]++
				r.mu.Unlock()
			}
		}
		return err
	}
}

// BenchmarkMultiLevelCache is a whole-sample benchmark (sample_test.go) measuring what the
// port's run measures for its designs without moka: clients (8, or --concurrency) reading users
// drawn from the port's Zipf (the point's skew) over its keys (the keys knob), each sample from
// empty caches, each client first reading keys/clients draws of its own sequence before the
// clock (the port's defined starting state); hit ratios and database reads count the timed
// warm-up and the measured window.
func BenchmarkMultiLevelCache(b *testing.B) {
	for _, name := range []string{"postgres-only", "redis-postgres", "guide-l1-redis-postgres"} {
		b.Run(name, func(b *testing.B) {
			skew := pointValue(b, 0.99)
			if !(skew > 0 && skew < 10) {
				b.Fatal("Zipf skew must be within (0, 10)")
			}
			keysN := envCount(b, "PERFLAB_KNOB_KEYS", 2_500)
			clients := envCount(b, "PERFLAB_CONCURRENCY", 8)
			ctx := context.Background()
			db := openPostgres(b, clients, clients)
			defer db.Close()
			ids, err := liveUserIDs(ctx, db, keysN, workerPoolSeed)
			if err != nil || len(ids) != keysN {
				b.Fatalf("%d live users for %d keys: %v", len(ids), keysN, err)
			}
			stmt, err := db.PrepareContext(ctx, GetByIDSQL)
			if err != nil {
				b.Fatal(err)
			}
			defer stmt.Close()
			if err := warmPool(ctx, stmt, ids[0], clients); err != nil {
				b.Fatal(err)
			}
			prefix := os.Getenv("PERFLAB_REDIS_PREFIX") + "user:"
			keys := make([]string, len(ids))
			for i, id := range ids {
				keys[i] = prefix + id
			}
			rdb := redisClient(b)
			defer rdb.Close()
			// Every sample starts with empty caches: this experiment's keys go first.
			iter := rdb.Scan(ctx, 0, strings.ReplaceAll(os.Getenv("PERFLAB_REDIS_PREFIX"), "*", `\*`)+"*", 1000).Iterator()
			for iter.Next(ctx) {
				if err := rdb.Unlink(ctx, iter.Val()).Err(); err != nil {
					b.Fatalf("emptying the cache: %v", err)
				}
			}
			if err := iter.Err(); err != nil {
				b.Fatal(err)
			}
			counts := &redisCounts{setErrors: map[string]uint64{}, background: name == "guide-l1-redis-postgres"}
			rdb.AddHook(counts)
			l3 := &pgUsers{stmt: stmt, prefix: prefix}
			var cache interface {
				Get(context.Context, string) (interface{}, error)
			}
			var guide *MultiLevelCache
			switch name {
			case "postgres-only":
				cache = l3
			case "redis-postgres":
				cache = &RedisAside{l2: rdb, l3: l3, ttl: 30 * time.Minute}
			default:
				guide = NewMultiLevelCache(rdb, l3)
				cache = guide
			}
			zipf := newZipfAlias(len(ids), skew)
			// Each client's reads and draws in an allocation of its own: no two clients write
			// one cache line.
			type reader struct {
				reads int64
				rng   splitMix64
				_     [48]byte // a cache line each (Go packs small objects together)
			}
			readers := make([]*reader, clients)
			ops := make([]operation, clients)
			for c := range ops {
				r := &reader{rng: splitMix64(workerPoolSeed ^ uint64(c)*0x9E3779B97F4A7C15)}
				readers[c] = r
				ops[c] = func() string {
					r.reads++
					if _, err := cache.Get(ctx, keys[zipf.draw(&r.rng)]); err != nil {
						return errorKind(err)
					}
					return ""
				}
			}
			// The defined starting state, each client on its own goroutine as the port's are.
			var wg sync.WaitGroup
			failed := make([]string, clients)
			for c := range ops {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range len(ids) / clients {
						if f := ops[c](); f != "" && failed[c] == "" {
							failed[c] = f
						}
					}
				}()
			}
			wg.Wait()
			for _, f := range failed {
				if f != "" {
					b.Fatalf("pre-warming the caches: %s", f)
				}
			}
			for _, r := range readers {
				r.reads = 0
			}
			gets0, hits0, l30 := counts.gets.Load(), counts.hits.Load(), l3.reads.Load()
			// Database reads per second of the counted window, the timed warm-up and the measured
			// time (the pre-warm is before it, and not counted).
			counting := time.Now()
			closedLoop(b, clients, func(c int) operation { return ops[c] }, func(m map[string]float64, errs map[string]uint64, _ float64) {
				// The background refills that failed, by kind, as the port counts them.
				counts.mu.Lock()
				for k, n := range counts.setErrors {
					errs[k] += n
				}
				counts.mu.Unlock()
				elapsed := time.Since(counting).Seconds()
				var total int64
				for _, r := range readers {
					total += r.reads
				}
				gets, hits, h3 := counts.gets.Load()-gets0, counts.hits.Load()-hits0, l3.reads.Load()-l30
				h1, h2 := max(total-gets, 0), hits
				if name == "postgres-only" {
					h1, h2 = 0, 0
				}
				all := float64(max(h1+h2+h3, 1))
				m["db_queries_per_sec"] = float64(h3) / elapsed
				m["l1_hit_ratio"] = float64(h1) / all
				m["l2_hit_ratio"] = float64(h2) / all
				m["l3_ratio"] = float64(h3) / all
				var entries, bytes int
				if guide != nil {
					guide.l1.Range(func(k, v any) bool {
						entries++
						data, _ := json.Marshal(v.(*CacheItem).Data)
						bytes += len(k.(string)) + len(data)
						return true
					})
				}
				m["l1_entries"] = float64(entries)
				m["l1_bytes"] = float64(bytes)
			})
		})
	}
}

func TestTheZipfAliasIsThePorts(t *testing.T) {
	z := newZipfAlias(1000, 1.2)
	rng := splitMix64(7)
	counts := make([]int, 1000)
	for range 100_000 {
		counts[z.draw(&rng)]++
	}
	// Rank 1's share under Zipf(1.2) over 1000 ranks is 1/H(1000, 1.2), about 0.22.
	if share := float64(counts[0]) / 100_000; share < 0.2 || share > 0.24 {
		t.Fatalf("rank 1 drew %v of the draws", share)
	}
	// The port's draws from the same table and seed (experiments/multi-level-cache pins them).
	z, rng = newZipfAlias(1000, 1.2), splitMix64(7)
	var first []int
	for range 12 {
		first = append(first, z.draw(&rng))
	}
	if fmt.Sprint(first) != "[487 0 3 8 54 82 61 0 0 8 6 9]" {
		t.Fatalf("the first draws %v are not the port's", first)
	}
	if counts[0] <= counts[1] || counts[1] <= counts[9] {
		t.Fatal("the ranks are not in order of their weights")
	}
	flat := newZipfAlias(10, 0)
	for _, p := range flat.prob {
		if p != 1 {
			t.Fatal("a flat distribution has no aliases")
		}
	}
}
