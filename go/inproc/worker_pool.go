package inproc

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"github.com/lib/pq"
	"golang.org/x/sync/errgroup"
)

// The guide's worker pool, as printed (应用层优化 › 并发优化 › 工作池模式).

// 工作池模式
type WorkerPool struct {
	workerCount int
	jobQueue    chan Job
	workers     []*Worker
	wg          sync.WaitGroup
}

type Job struct {
	ID   string
	Data interface{}
	Done chan Result
}

type Result struct {
	Data  interface{}
	Error error
}

type Worker struct {
	id       int
	jobQueue chan Job
	quit     chan bool
	handler  JobHandler
}

type JobHandler func(Job) Result

func NewWorkerPool(workerCount int, queueSize int, handler JobHandler) *WorkerPool {
	pool := &WorkerPool{
		workerCount: workerCount,
		jobQueue:    make(chan Job, queueSize),
		workers:     make([]*Worker, workerCount),
	}

	// 创建工作者
	for i := 0; i < workerCount; i++ {
		worker := &Worker{
			id:       i,
			jobQueue: pool.jobQueue,
			quit:     make(chan bool),
			handler:  handler,
		}
		pool.workers[i] = worker
	}

	return pool
}

func (p *WorkerPool) Start() {
	for _, worker := range p.workers {
		p.wg.Add(1)
		go worker.start(&p.wg)
	}
}

func (p *WorkerPool) Stop() {
	for _, worker := range p.workers {
		worker.quit <- true
	}
	p.wg.Wait()
}

func (p *WorkerPool) Submit(job Job) {
	p.jobQueue <- job
}

func (w *Worker) start(wg *sync.WaitGroup) {
	defer wg.Done()

	for {
		select {
		case job := <-w.jobQueue:
			result := w.handler(job)
			job.Done <- result
		case <-w.quit:
			return
		}
	}
}

// 使用工作池处理批量任务
func (s *UserService) ProcessUsersBatch(ctx context.Context, userIDs []string) ([]*User, error) {
	workerPool := NewWorkerPool(10, 100, func(job Job) Result {
		userID := job.Data.(string)
		user, err := s.repo.GetByID(ctx, userID)
		return Result{Data: user, Error: err}
	})

	workerPool.Start()
	defer workerPool.Stop()

	// 提交任务
	results := make([]chan Result, len(userIDs))
	for i, userID := range userIDs {
		done := make(chan Result, 1)
		results[i] = done

		job := Job{
			ID:   userID,
			Data: userID,
			Done: done,
		}
		workerPool.Submit(job)
	}

	// 收集结果
	users := make([]*User, 0, len(userIDs))
	for _, resultChan := range results {
		result := <-resultChan
		if result.Error != nil {
			return nil, result.Error
		}
		users = append(users, result.Data.(*User))
	}

	return users, nil
}

// ProcessUsersSequential looks the users up one after another.
func (s *UserService) ProcessUsersSequential(ctx context.Context, userIDs []string) ([]*User, error) {
	users := make([]*User, 0, len(userIDs))
	for _, id := range userIDs {
		u, err := s.repo.GetByID(ctx, id)
		if err != nil {
			return nil, err
		}
		users = append(users, u)
	}
	return users, nil
}

// ProcessUsersGoroutinePerItem starts a goroutine per user, all at once; the database pool's
// open-connection limit is the only bound.
func (s *UserService) ProcessUsersGoroutinePerItem(ctx context.Context, userIDs []string) ([]*User, error) {
	users := make([]*User, len(userIDs))
	errs := make([]error, len(userIDs))
	var wg sync.WaitGroup
	for i, id := range userIDs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			users[i], errs[i] = s.repo.GetByID(ctx, id)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return users, nil
}

// ProcessUsersErrgroup is the fix a Go engineer writes for a bounded batch: errgroup with
// SetLimit(10), as many lookups at once as the guide's pool, no queue, no channel per job.
func (s *UserService) ProcessUsersErrgroup(ctx context.Context, userIDs []string) ([]*User, error) {
	users := make([]*User, len(userIDs))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(10)
	for i, id := range userIDs {
		g.Go(func() error {
			u, err := s.repo.GetByID(ctx, id)
			users[i] = u
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return users, nil
}

// GetByIDSQL is fixtures/sql/pg-batch/get_by_id.sql, the guide's prepared getUserByID (a Go
// test checks the copy against the file).
const GetByIDSQL = `-- The guide's GetByID (its prepared getUserByID): one user by primary key.
SELECT id, username, email, created_at
FROM users
WHERE id = $1 AND deleted_at IS NULL
`

// PgRepo is the guide's repository on database/sql: GetByID through a statement prepared
// once (database/sql prepares it again on each connection it runs on).
type PgRepo struct {
	getByID *sql.Stmt
	db      *sql.DB
}

func NewPgRepo(ctx context.Context, db *sql.DB) (*PgRepo, error) {
	stmt, err := db.PrepareContext(ctx, GetByIDSQL)
	if err != nil {
		return nil, err
	}
	return &PgRepo{getByID: stmt, db: db}, nil
}

func (r *PgRepo) GetByID(ctx context.Context, id string) (*User, error) {
	u := &User{}
	if err := r.getByID.QueryRowContext(ctx, id).Scan(&u.ID, &u.Username, &u.Email, &u.CreatedAt); err != nil {
		return nil, err
	}
	return u, nil
}

func (r *PgRepo) LoadUser(ctx context.Context, id string, user *User) error {
	u, err := r.GetByID(ctx, id)
	if err != nil {
		return err
	}
	*user = *u
	return nil
}

// 批量查询优化: the guide's (r *UserRepository) GetUsersByIDs as printed, on PgRepo (the
// guide's repository struct; UserService's repo field is the interface of that name).
func (r *PgRepo) GetUsersByIDs(ctx context.Context, ids []string) ([]*User, error) {
	if len(ids) == 0 {
		return []*User{}, nil
	}

	// 使用ANY操作符进行批量查询
	query := `
        SELECT id, username, email, created_at 
        FROM users 
        WHERE id = ANY($1) AND deleted_at IS NULL
        ORDER BY created_at DESC
    `

	rows, err := r.db.QueryContext(ctx, query, pq.Array(ids))
	if err != nil {
		return nil, fmt.Errorf("failed to query users: %w", err)
	}
	defer rows.Close()

	users := make([]*User, 0, len(ids))
	for rows.Next() {
		var user User
		if err := rows.Scan(&user.ID, &user.Username, &user.Email, &user.CreatedAt); err != nil {
			return nil, fmt.Errorf("failed to scan user: %w", err)
		}
		users = append(users, &user)
	}

	return users, rows.Err()
}
