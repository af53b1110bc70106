package inproc

import (
	"context"
	"testing"
)

// The port's pg-batch constants (experiments/pg-batch): its seed (the worker-pool's), the ids
// it draws from, its pool of 25 connections all kept.
const (
	pgBatchIDs  = 100_000
	pgBatchPool = 25
)

// BenchmarkPgBatch is a whole-sample benchmark (sample_test.go) measuring what the port's run
// measures: clients loading batches of users, N+1 prepared lookups, the same through the
// guide's worker pool, or the guide's GetUsersByIDs, on one database/sql pool of 25, filled
// and its statement prepared on the connections a batch uses before the clock.
func BenchmarkPgBatch(b *testing.B) {
	for _, v := range []struct {
		name  string
		conns int
	}{{"n-plus-one", 1}, {"guide-worker-pool", 10}, {"guide-any", 1}} {
		b.Run(v.name, func(b *testing.B) {
			items := point(b, 10)
			ctx := context.Background()
			_, ids, first := usersDB(b, pgBatchPool, pgBatchPool, pgBatchIDs, items, v.conns)
			// Every client its own pool of 25, filled before the clock, as the port's have.
			clients := envCount(b, "PERFLAB_CONCURRENCY", 1)
			loads := make([]operation, clients)
			for c := range loads {
				repo := first
				if c > 0 {
					_, repo = usersPool(b, pgBatchPool, pgBatchPool)
					if err := warmPool(ctx, repo.getByID, ids[0], v.conns); err != nil {
						b.Fatal(err)
					}
				}
				s := &UserService{repo: repo}
				process := map[string]processUsers{
					"n-plus-one": s.ProcessUsersSequential, "guide-worker-pool": s.ProcessUsersBatch, "guide-any": repo.GetUsersByIDs,
				}[v.name]
				loads[c] = batchLoads(ctx, ids, items, process)(c)
			}
			closedLoop(b, clients, func(c int) operation { return loads[c] }, func(m map[string]float64, _ map[string]uint64, perSec float64) {
				// Statements sent; go-guide-any's one unprepared statement is two round trips,
				// as lib/pq sends it (the notes say so).
				m["queries_per_batch"] = float64(items)
				if v.name == "guide-any" {
					m["queries_per_batch"] = 1
				}
				m["rows_per_sec"] = perSec * float64(items)
				m["connections"] = float64(v.conns)
			})
		})
	}
}

// batchLoads makes client c's operation, as the port's batch experiments have it: a batch of
// items consecutive ids from a random start (the port's seed plus c), loaded by process, all
// of them found.
func batchLoads(ctx context.Context, ids []string, items int, process processUsers) func(c int) operation {
	return func(c int) operation {
		rng := splitMix64(workerPoolSeed + uint64(c))
		return func() string {
			start := int(rng.next() % uint64(len(ids)-items))
			users, err := process(ctx, ids[start:start+items])
			switch {
			case err != nil:
				return errorKind(err)
			case len(users) != items:
				return "wrong number of users returned"
			}
			return ""
		}
	}
}
