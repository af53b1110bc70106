package inproc

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lib/pq"
)

// countingConnector is lib/pq's connector, counting the connections it opens.
type countingConnector struct {
	driver.Connector
	opened *atomic.Int64
}

func (c countingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err == nil {
		c.opened.Add(1)
	}
	return conn, err
}

// pgConnector is lib/pq's connector for the run's Postgres (libpq's environment, the run's
// schema), counting what it opens.
func pgConnector(b *testing.B, opened *atomic.Int64) driver.Connector {
	dsn := ""
	if schema := os.Getenv("PERFLAB_PG_SCHEMA"); schema != "" {
		dsn = "search_path=" + schema
	}
	c, err := pq.NewConnector(dsn)
	if err != nil {
		b.Fatal(err)
	}
	return countingConnector{c, opened}
}

// pgPoolBurstPeriod is the port's burst_period: 4 ms per client, at least 10 ms.
func pgPoolBurstPeriod(clients int) time.Duration {
	return max(time.Duration(clients)*4*time.Millisecond, 10*time.Millisecond)
}

// BenchmarkPgPool is a whole-sample benchmark (sample_test.go) measuring what the port's run
// measures (experiments/pg-pool) on database/sql itself: clients (the point) looking a random
// user up, steadily (a closed loop) or in bursts (PERFLAB_CASE), through a pool of the guide's
// DefaultDBConfig (25 open, 5 idle), a pool of 25 that keeps them all, or a new connection per
// lookup. Every variant sends the lookup the same way (db.QueryContext: lib/pq's unnamed
// statement), so only the connection handling differs.
func BenchmarkPgPool(b *testing.B) {
	for _, v := range []struct {
		name             string
		maxOpen, maxIdle int
	}{{"new-connection", 0, 0}, {"guide-25-open-5-idle", 25, 5}, {"pool-25", 25, 25}} {
		b.Run(v.name, func(b *testing.B) {
			clients := point(b, 8)
			ctx := context.Background()
			var opened atomic.Int64
			connector := pgConnector(b, &opened)
			admin := sql.OpenDB(connector)
			defer admin.Close()
			admin.SetMaxOpenConns(1)
			ids, err := liveUserIDs(ctx, admin, 50_000, workerPoolSeed)
			if err != nil || len(ids) == 0 {
				b.Fatalf("no user ids: %v", err)
			}
			// As in the port, every connection a pool opens counts, from its creation.
			openedBefore := opened.Load()
			var pool *sql.DB
			if v.maxOpen > 0 {
				// The guide's NewOptimizedDB with its DefaultDBConfig (pool-25: all kept).
				cfg := DefaultDBConfig()
				cfg.MaxOpenConns, cfg.MaxIdleConns = v.maxOpen, v.maxIdle
				if pool, err = NewOptimizedDBOn(connector, cfg); err != nil {
					b.Fatal(err)
				}
				defer pool.Close()
			}
			// The server's client backends while the load runs, on the admin's connection.
			stop := make(chan struct{})
			var backends int64
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					var n int64
					if admin.QueryRowContext(ctx, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'").Scan(&n) == nil {
						backends = max(backends, n-1) // not counting the monitor
					}
					select {
					case <-stop:
						return
					case <-time.After(50 * time.Millisecond):
					}
				}
			}()
			started := time.Now()
			client := func(c int) operation {
				rng := splitMix64(workerPoolSeed + uint64(c))
				return func() string {
					id := ids[rng.next()%uint64(len(ids))]
					db := pool
					if db == nil {
						db = sql.OpenDB(connector)
						db.SetMaxIdleConns(0)
						defer db.Close()
					}
					var u User
					err := db.QueryRowContext(ctx, GetByIDSQL, id).Scan(&u.ID, &u.Username, &u.Email, &u.CreatedAt)
					if err != nil {
						return errorKind(err)
					}
					return ""
				}
			}
			extra := func(m map[string]float64, _ map[string]uint64, _ float64) {
				elapsed := time.Since(started).Seconds()
				close(stop)
				wg.Wait()
				n := float64(opened.Load() - openedBefore)
				m["connections_opened_per_sec"] = n / elapsed
				m["connections_opened"] = n
				m["server_backends_max"] = float64(backends)
				if pool != nil {
					st := pool.Stats()
					m["pool_waits_per_sec"] = float64(st.WaitCount) / elapsed
					m["idle_closed_per_sec"] = float64(st.MaxIdleClosed) / elapsed
				}
			}
			switch os.Getenv("PERFLAB_CASE") {
			case "steady", "":
				closedLoop(b, clients, client, extra)
			case "bursty":
				bursts(b, clients, pgPoolBurstPeriod(clients), client, extra)
			default:
				b.Fatalf("unknown case %q", os.Getenv("PERFLAB_CASE"))
			}
		})
	}
}
