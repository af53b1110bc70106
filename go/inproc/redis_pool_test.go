package inproc

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
			base := redisOptions(b)
			admin := redis.NewClient(base)
			defer admin.Close()
			// Every connection the variant's pool or clients dial, counted as it is made.
			var dialled atomic.Int64
			counted := func(o *redis.Options) *redis.Options {
				c := *o
				d := &net.Dialer{Timeout: c.DialTimeout, KeepAlive: 5 * time.Minute}
				if c.DialTimeout == 0 {
					d.Timeout = 5 * time.Second
				}
				c.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
					conn, err := d.DialContext(ctx, network, addr)
					if err == nil {
						dialled.Add(1)
					}
					return conn, err
				}
				return &c
			}
			// As in the port, the pool's own dials (MinIdleConns at creation) count.
			accepted, err := infoField(ctx, admin, "stats", "total_connections_received")
			if err != nil {
				b.Fatal(err)
			}
			var pool *redis.Client
			switch name {
			case "default":
				pool = redis.NewClient(counted(base))
			case "guide-20":
				pool = redis.NewClient(counted(GuideRedisOptions(base, 20)))
			case "pool-5":
				pool = redis.NewClient(counted(GuideRedisOptions(base, 5)))
			case "pool-100":
				pool = redis.NewClient(counted(GuideRedisOptions(base, 100)))
			}
			if pool != nil {
				defer pool.Close()
				// The MinIdleConns dials go-redis starts at creation finish before the clock
				// (TotalConns counts a connection once dialled).
				for deadline := time.Now().Add(5 * time.Second); int(pool.PoolStats().TotalConns) < pool.Options().MinIdleConns && time.Now().Before(deadline); {
					time.Sleep(time.Millisecond)
				}
			}
			prefix := os.Getenv("PERFLAB_REDIS_PREFIX")
			keys := make([]string, redisPoolKeys)
			for i := range keys {
				keys[i] = prefix + "user:" + strconv.Itoa(i)
			}
			// The monitor, on its own connection: open connections on the server, and in the pool.
			mo := *base
			mo.PoolSize = 1
			monitor := redis.NewClient(&mo)
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
			perGet := counted(base)
			started := time.Now()
			closedLoop(b, clients, func(c int) operation {
				rng := splitMix64(0x9E3779B9 ^ uint64(c))
				return func() string {
					key := keys[rng.next()%redisPoolKeys]
					client := pool
					if client == nil {
						client = redis.NewClient(perGet)
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
			}, func(m map[string]float64, _ map[string]uint64, _ float64) {
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
					m["pool_connections_opened"] = float64(dialled.Load())
					m["pool_size"] = float64(pool.Options().PoolSize)
				}
			})
		})
	}
}

// redisPoolKeys is the port's key space (experiments/redis-pool): <prefix>user:<i>.
const redisPoolKeys = 10_000

func TestTheGuidesRedisSettingsAreNewOptimizedRedisClients(t *testing.T) {
	printed := NewOptimizedRedisClient("127.0.0.1:1", "pw")
	defer printed.Close()
	got := GuideRedisOptions(&redis.Options{Addr: "127.0.0.1:1", Password: "pw"}, 20)
	p := printed.Options()
	if p.PoolSize != got.PoolSize || p.MinIdleConns != got.MinIdleConns || p.MaxIdleConns != got.MaxIdleConns ||
		p.ConnMaxIdleTime != got.ConnMaxIdleTime || p.ConnMaxLifetime != got.ConnMaxLifetime ||
		p.DialTimeout != got.DialTimeout || p.ReadTimeout != got.ReadTimeout || p.WriteTimeout != got.WriteTimeout ||
		p.MaxRetries != got.MaxRetries || p.MinRetryBackoff != got.MinRetryBackoff || p.MaxRetryBackoff != got.MaxRetryBackoff {
		t.Fatalf("GuideRedisOptions %+v differ from NewOptimizedRedisClient's %+v", got, p)
	}
}
