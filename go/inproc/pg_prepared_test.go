package inproc

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"testing"
)

// BenchmarkPgPrepared is a whole-sample benchmark (sample_test.go) measuring what the port's
// run measures (experiments/pg-prepared) through lib/pq itself: clients (the point), each on a
// connection of its own (a database/sql pool of that many, filled before the clock), looking
// a random user up, joining their policies and keys, or inserting a fresh one, either with
// db.QueryContext/ExecContext (lib/pq prepares an unnamed statement and then executes it) or
// through the guide's db.Prepare'd *sql.Stmt. Inserted rows are deleted after the sample, as
// the port deletes its own.
func BenchmarkPgPrepared(b *testing.B) {
	for _, name := range []string{"unprepared", "guide-prepared"} {
		b.Run(name, func(b *testing.B) {
			clients := point(b, 1)
			shape := os.Getenv("PERFLAB_CASE")
			query := PreparedSQL[shape]
			if query == "" {
				b.Fatalf("unknown case %q", shape)
			}
			ctx := context.Background()
			db := openPostgres(b, clients, clients)
			defer db.Close()
			ids, err := liveUserIDs(ctx, db, 50_000, workerPoolSeed)
			if err != nil || len(ids) == 0 {
				b.Fatalf("no user ids: %v", err)
			}
			// The guide's db.Prepare, on every connection before the clock (database/sql
			// prepares a Stmt on each connection it runs on); the unprepared variant's
			// connections are opened just the same.
			stmt, err := db.PrepareContext(ctx, query)
			if err != nil {
				b.Fatal(err)
			}
			defer stmt.Close()
			warm := stmt
			if shape == "insert" {
				if warm, err = db.PrepareContext(ctx, PreparedSQL["pk-lookup"]); err != nil {
					b.Fatal(err)
				}
				defer warm.Close()
			}
			if err := warmPool(ctx, warm, ids[0], clients); err != nil {
				b.Fatal(err)
			}
			closedLoop(b, clients, func(c int) operation {
				rng := splitMix64(workerPoolSeed ^ uint64(os.Getpid())<<32 ^ uint64(c))
				inserted := 0
				return func() string {
					var err error
					if shape == "insert" {
						inserted++
						n := fmt.Sprintf("prep_go_%d_%d_%d", os.Getpid(), c, inserted)
						hi, lo := rng.next(), rng.next()
						id := fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", hi>>32, hi>>16&0xffff, hi&0xffff, lo>>48, lo&0xffffffffffff)
						if name == "unprepared" {
							_, err = db.ExecContext(ctx, query, id, n, n+"@example.com")
						} else {
							_, err = stmt.ExecContext(ctx, id, n, n+"@example.com")
						}
						if err != nil {
							return errorKind(err)
						}
						return ""
					}
					var rows *sql.Rows
					id := ids[rng.next()%uint64(len(ids))]
					if name == "unprepared" {
						rows, err = db.QueryContext(ctx, query, id)
					} else {
						rows, err = stmt.QueryContext(ctx, id)
					}
					if err != nil {
						return errorKind(err)
					}
					found := 0
					for rows.Next() {
						found++
					}
					if err := rows.Close(); err != nil {
						return errorKind(err)
					}
					if found == 0 {
						return "no rows"
					}
					return ""
				}
			}, func(m map[string]float64, _ map[string]uint64, _ float64) {
				if shape != "insert" {
					return
				}
				// The next sample starts from the same table, as in the port.
				res, err := db.ExecContext(ctx, `DELETE FROM users WHERE username LIKE 'prep\_%'`)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := db.ExecContext(ctx, "VACUUM users"); err != nil {
					b.Fatal(err)
				}
				n, _ := res.RowsAffected()
				m["rows_removed_after"] = float64(n)
			})
		})
	}
}

func TestTheStatementsAreTheFixtures(t *testing.T) {
	for shape, file := range map[string]string{"pk-lookup": "pk_lookup", "join-3": "join3", "insert": "insert"} {
		data, err := os.ReadFile("../../fixtures/sql/pg-prepared/" + file + ".sql")
		if err != nil {
			t.Fatal(err)
		}
		if string(data) != PreparedSQL[shape] {
			t.Fatalf("PreparedSQL[%q] differs from fixtures/sql/pg-prepared/%s.sql", shape, file)
		}
	}
}
