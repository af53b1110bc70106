package inproc

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	_ "github.com/lib/pq"
)

// openPostgres opens the run's Postgres through lib/pq, the driver the guide imports: the
// server comes in libpq's environment (PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD,
// PGSSLMODE, which lib/pq reads), never on the command line, and the run's schema, if it has
// one, in PERFLAB_PG_SCHEMA.
func openPostgres(b *testing.B, maxOpen, maxIdle int) *sql.DB {
	if os.Getenv("PGHOST") == "" {
		b.Fatal("no Postgres: PGHOST is not set (the harness sets it for a run's server)")
	}
	dsn := ""
	if schema := os.Getenv("PERFLAB_PG_SCHEMA"); schema != "" {
		dsn = "search_path=" + schema
	}
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(maxOpen)
	db.SetMaxIdleConns(maxIdle)
	return db
}

// liveUserIDs are the port's ids (harness/src/kit/fixtures.rs, live_user_ids): the first
// limit live fixture users by id, shuffled by the port's SplitMix64 with seed.
func liveUserIDs(ctx context.Context, db *sql.DB, limit int, seed uint64) ([]string, error) {
	rows, err := db.QueryContext(ctx, `SELECT id FROM users WHERE deleted_at IS NULL AND username LIKE 'user\_%' ORDER BY id LIMIT $1`, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	rng := splitMix64(seed)
	for i := len(ids) - 1; i > 0; i-- {
		j := rng.next() % uint64(i+1)
		ids[i], ids[j] = ids[j], ids[i]
	}
	return ids, rows.Err()
}

// warmPool opens n connections at once and prepares stmt's statement on each, before the
// clock, as the port's pools are filled: n queries held open together take n connections.
func warmPool(ctx context.Context, stmt *sql.Stmt, id string, n int) error {
	var ready, release sync.WaitGroup
	ready.Add(n)
	release.Add(1)
	errs := make([]error, n)
	var done sync.WaitGroup
	for i := 0; i < n; i++ {
		done.Add(1)
		go func() {
			defer done.Done()
			rows, err := stmt.QueryContext(ctx, id)
			ready.Done()
			if err != nil {
				errs[i] = err
				return
			}
			release.Wait()
			errs[i] = rows.Close()
		}()
	}
	ready.Wait()
	release.Done()
	done.Wait()
	return errors.Join(errs...)
}

// The port's worker-pool constants: its seed, the guide's DB config, the ids it draws from.
const (
	workerPoolSeed = 20_240_101
	guideMaxOpen   = 25
	guideMaxIdle   = 5
	workerPoolIDs  = 50_000
)

// BenchmarkWorkerPool is a whole-sample benchmark (sample_test.go) measuring what the Rust
// port's run measures (experiments/worker-pool): clients loading batches of users back to
// back, one lookup per user, each batch one operation.
func BenchmarkWorkerPool(b *testing.B) {
	type way = func(*UserService, context.Context, []string) ([]*User, error)
	for _, v := range []struct {
		name             string
		process          way
		maxOpen, maxIdle int
	}{
		{"sequential", (*UserService).ProcessUsersSequential, guideMaxOpen, guideMaxOpen},
		{"goroutine-per-item", (*UserService).ProcessUsersGoroutinePerItem, guideMaxOpen, guideMaxOpen},
		{"goroutine-per-item-10", (*UserService).ProcessUsersGoroutinePerItem, 10, 10},
		{"guide-worker-pool", (*UserService).ProcessUsersBatch, guideMaxOpen, guideMaxOpen},
		{"errgroup-10", (*UserService).ProcessUsersErrgroup, guideMaxOpen, guideMaxOpen},
		{"guide-worker-pool-idle5", (*UserService).ProcessUsersBatch, guideMaxOpen, guideMaxIdle},
	} {
		b.Run(v.name, func(b *testing.B) {
			items := point(b, 100)
			ctx := context.Background()
			// --set worker-pool.max_idle reaches every pool but the guide's idle-5 one, as in
			// the port.
			maxIdle := v.maxIdle
			if v.name != "guide-worker-pool-idle5" {
				maxIdle = min(envCount(b, "PERFLAB_KNOB_MAX_IDLE", maxIdle), v.maxOpen)
			}
			db, ids, repo := usersDB(b, v.maxOpen, maxIdle, workerPoolIDs, items, v.maxOpen)
			s := &UserService{repo: repo}
			filled := db.Stats()
			process := func(ctx context.Context, ids []string) ([]*User, error) { return v.process(s, ctx, ids) }
			closedLoop(b, envCount(b, "PERFLAB_CONCURRENCY", 1), batchLoads(ctx, ids, items, process), func(m map[string]float64, _ map[string]uint64, _ float64) {
				after := db.Stats()
				closed := func(st sql.DBStats) int64 { return st.MaxIdleClosed + st.MaxIdleTimeClosed + st.MaxLifetimeClosed }
				opened := int64(after.OpenConnections-filled.OpenConnections) + closed(after) - closed(filled)
				m["connections_used"] = float64(max(opened, 0))
				m["harness_peak_rss_bytes"] = float64(peakRSSBytes())
			})
		})
	}
}

// envCount is a positive count from the environment variable name (by hand: def).
func envCount(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q is not a positive count", name, v)
	}
	return n
}

// errorKind names a failed operation by kind, as the port's load engine does: the error's
// text without what varies (a user's id).
func errorKind(err error) string {
	if errors.Is(err, sql.ErrNoRows) {
		return "user not found"
	}
	return kindOf(err.Error())
}

// kindOf is the port's error_kind (harness/src/load.rs): every run of digits an N (a port, an
// id, a count), but an OS error's number; at most 160 characters.
func kindOf(msg string) string {
	var out strings.Builder
	n := 0
	for i := 0; i < len(msg) && n < 160; n++ {
		c := msg[i]
		if c < '0' || c > '9' {
			out.WriteByte(c)
			i++
			continue
		}
		j := i
		for j < len(msg) && msg[j] >= '0' && msg[j] <= '9' {
			j++
		}
		if strings.HasSuffix(out.String(), "os error ") {
			out.WriteString(msg[i:j])
		} else {
			out.WriteByte('N')
		}
		i = j
	}
	return out.String()
}

func TestErrorKindsAreThePorts(t *testing.T) {
	for in, want := range map[string]string{
		"dial tcp 127.0.0.1:40123: connect: connection refused": "dial tcp N.N.N.N:N: connect: connection refused",
		"read: os error 104": "read: os error 104",
		"3 of 10 keys found": "N of N keys found",
	} {
		if got := kindOf(in); got != want {
			t.Fatalf("kindOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEveryBatchWayReturnsTheUsersInOrder(t *testing.T) {
	ctx := context.Background()
	s := &UserService{repo: rowRepo{}}
	ids := UserIDs(250)
	want, err := s.ProcessUsersSequential(ctx, ids)
	if err != nil || len(want) != 250 {
		t.Fatalf("sequential: %d users, %v", len(want), err)
	}
	ways := map[string]processUsers{"guide": s.ProcessUsersBatch, "goroutine-per-item": s.ProcessUsersGoroutinePerItem, "errgroup": s.ProcessUsersErrgroup}
	sameUsers(t, ctx, ids, want, ways)
	for name, process := range ways {
		if _, err := process(ctx, append(UserIDs(20), "not-a-number")); err == nil {
			t.Fatalf("%s: a failed lookup is the batch's error", name)
		}
	}
}

func TestTheQueryIsTheFixtures(t *testing.T) {
	file, err := os.ReadFile("../../fixtures/sql/pg-batch/get_by_id.sql")
	if err != nil {
		t.Fatal(err)
	}
	if string(file) != GetByIDSQL {
		t.Fatalf("GetByIDSQL differs from fixtures/sql/pg-batch/get_by_id.sql:\n%s", file)
	}
}

// usersDB is what the batch benchmarks start from, before the clock: a database/sql pool of
// maxOpen and maxIdle, the port's first idLimit live user ids in its shuffled order (more than
// a batch of items), the guide's repository, and warm connections opened with its statement
// prepared on each. All of it is closed when the benchmark ends.
func usersDB(b *testing.B, maxOpen, maxIdle, idLimit, items, warm int) (*sql.DB, []string, *PgRepo) {
	ctx := context.Background()
	db, repo := usersPool(b, maxOpen, maxIdle)
	ids, err := liveUserIDs(ctx, db, idLimit, workerPoolSeed)
	if err != nil {
		b.Fatal(err)
	}
	if len(ids) <= items {
		b.Fatalf("only %d user ids for batches of %d", len(ids), items)
	}
	if err := warmPool(ctx, repo.getByID, ids[0], warm); err != nil {
		b.Fatal(err)
	}
	return db, ids, repo
}

// usersPool is a database/sql pool of maxOpen and maxIdle and the guide's repository on it,
// closed when the benchmark ends.
func usersPool(b *testing.B, maxOpen, maxIdle int) (*sql.DB, *PgRepo) {
	db := openPostgres(b, maxOpen, maxIdle)
	b.Cleanup(func() { db.Close() })
	repo, err := NewPgRepo(context.Background(), db)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { repo.getByID.Close() })
	return db, repo
}
