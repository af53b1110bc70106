package inproc

import (
	"bufio"
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// infoField reads one numeric field of Redis's INFO section.
func infoField(ctx context.Context, c *redis.Client, section, field string) (float64, error) {
	s, err := c.Info(ctx, section).Result()
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, errors.New("INFO " + section + " has no " + field)
}

// BenchmarkRedisPool is a whole-sample benchmark (sample_test.go) measuring what the port's run
// measures (experiments/redis-pool) on go-redis itself: clients (the point) GETting random
// cached users in a closed loop through one client of the variant's pool, or a new client per
// command; the server counts the connections it accepted and a monitor samples how many are
// open, and how many the pool holds.
func BenchmarkRedisPool(b *testing.B) {
	for _, name := range []string{"default", "guide-20", "pool-5", "pool-100", "new-client"} {
		b.Run(name, func(b *testing.B) {
			clients := point(b, 16)
			if clients < 1 || clients > 10_000 {
				b.Fatal("client concurrency must be within 1..=10000")
			}
			ctx := context.Background()
			admin := redisClient(b)
			defer admin.Close()
			opts := admin.Options()
			addr, password := opts.Addr, opts.Password
			// As in the port, the pool's own dials (MinIdleConns at creation) count.
			accepted, err := infoField(ctx, admin, "stats", "total_connections_received")
			if err != nil {
				b.Fatal(err)
			}
			var pool *redis.Client
			switch name {
			case "default":
				pool = DefaultRedisClient(addr, password)
			case "guide-20":
				pool = NewOptimizedRedisClient(addr, password)
			case "pool-5":
				pool = SizedRedisClient(addr, password, 5)
			case "pool-100":
				pool = SizedRedisClient(addr, password, 100)
			}
			if pool != nil {
				defer pool.Close()
				// The MinIdleConns dials go-redis starts at creation finish before the clock.
				for deadline := time.Now().Add(5 * time.Second); int(pool.PoolStats().IdleConns) < pool.Options().MinIdleConns && time.Now().Before(deadline); {
					time.Sleep(time.Millisecond)
				}
			}
			prefix := os.Getenv("PERFLAB_REDIS_PREFIX")
			keys := make([]string, redisPoolKeys)
			for i := range keys {
				keys[i] = prefix + "user:" + strconv.Itoa(i)
			}
			// The monitor, on its own connection: open connections on the server, and in the pool.
			monitor := redis.NewClient(&redis.Options{Addr: addr, Password: password, PoolSize: 1})
			defer monitor.Close()
			stop := make(chan struct{})
			var serverMax, poolMax float64
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					if n, err := infoField(ctx, monitor, "clients", "connected_clients"); err == nil {
						serverMax = max(serverMax, n)
					}
					if pool != nil {
						poolMax = max(poolMax, float64(pool.PoolStats().TotalConns))
					}
					select {
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
					}
				}
			}()
			started := time.Now()
			closedLoop(b, clients, func(c int) operation {
				rng := splitMix64(0x9E3779B9 ^ uint64(c))
				return func() string {
					key := keys[rng.next()%redisPoolKeys]
					client := pool
					if client == nil {
						client = redis.NewClient(&redis.Options{Addr: addr, Password: password})
						defer client.Close()
					}
					_, err := client.Get(ctx, key).Bytes()
					if err != nil {
						if errors.Is(err, redis.Nil) {
							return "key missing"
						}
						return errorKind(err)
					}
					return ""
				}
			}, func(m map[string]float64, _ float64) {
				elapsed := time.Since(started).Seconds()
				close(stop)
				wg.Wait()
				after, err := infoField(ctx, admin, "stats", "total_connections_received")
				if err != nil {
					b.Fatal(err)
				}
				// Not counting the monitor's connection (the admin's was open before).
				m["connections_opened_per_sec"] = max(after-accepted-1, 0) / elapsed
				m["server_connections_max"] = max(serverMax-2, 0)
				if pool != nil {
					m["pool_connections_max"] = poolMax
					m["pool_size"] = float64(pool.Options().PoolSize)
				}
			})
		})
	}
}

// redisPoolKeys is the port's key space (experiments/redis-pool): <prefix>user:<i>.
const redisPoolKeys = 10_000
