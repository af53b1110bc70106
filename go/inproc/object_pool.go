package inproc

import (
	"context"
	"strconv"
	"sync"
	"time"
)

// UserPool is the guide's code as printed (应用层优化 › 内存管理优化 › 对象池优化).
type UserPool struct {
	pool sync.Pool
}

func NewUserPool() *UserPool {
	return &UserPool{
		pool: sync.Pool{
			New: func() interface{} {
				return &User{}
			},
		},
	}
}

func (p *UserPool) Get() *User {
	return p.pool.Get().(*User)
}

func (p *UserPool) Put(user *User) {
	// 重置对象状态
	user.Reset()
	p.pool.Put(user)
}

// ProcessUsers is the guide's code as printed: the deferred Put runs when ProcessUsers
// returns, not at the end of the loop body, so every pooled user of the call is held until
// then, and each is copied out anyway.
func (s *UserService) ProcessUsers(ctx context.Context, userIDs []string) ([]*User, error) {
	users := make([]*User, 0, len(userIDs))

	for _, id := range userIDs {
		// 从对象池获取用户对象
		user := s.userPool.Get()
		defer s.userPool.Put(user)

		if err := s.repo.LoadUser(ctx, id, user); err != nil {
			return nil, err
		}

		// 复制用户数据，避免池对象被修改
		userCopy := *user
		users = append(users, &userCopy)
	}

	return users, nil
}

// ProcessUsersPutAfterUse is the fix a Go engineer writes: the user goes back to the pool at
// the end of each iteration, after its copy is taken.
func (s *UserService) ProcessUsersPutAfterUse(ctx context.Context, userIDs []string) ([]*User, error) {
	users := make([]*User, 0, len(userIDs))
	for _, id := range userIDs {
		user := s.userPool.Get()
		if err := s.repo.LoadUser(ctx, id, user); err != nil {
			s.userPool.Put(user)
			return nil, err
		}
		userCopy := *user
		users = append(users, &userCopy)
		s.userPool.Put(user)
	}
	return users, nil
}

// ProcessUsersAllocate is the code without a pool: a new User per id, loaded and kept.
func (s *UserService) ProcessUsersAllocate(ctx context.Context, userIDs []string) ([]*User, error) {
	users := make([]*User, 0, len(userIDs))
	for _, id := range userIDs {
		user := &User{}
		if err := s.repo.LoadUser(ctx, id, user); err != nil {
			return nil, err
		}
		users = append(users, user)
	}
	return users, nil
}

// rowRepo stands in for the guide's repository, as the Rust port's load_user does: it fills
// the user from the id with no database (the experiment is about the objects), each string
// field a new string, as a driver's row scan makes one, and the creation time a time.Time
// (a value: no allocation; the port's is a fifth string).
type rowRepo struct{}

func (rowRepo) LoadUser(_ context.Context, id string, u *User) error {
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		return err
	}
	var buf [48]byte
	b := appendPadded(buf[:0], n>>16, 16, 8)
	b = append(b, "-0000-4000-8000-"...)
	u.ID = string(appendPadded(b, n, 16, 12))
	u.Username = string(appendPadded(append(buf[:0], "user_"...), n, 10, 8))
	u.Email = string(append(strconv.AppendUint(append(buf[:0], "user"...), n, 10), "@example.com"...))
	status := "active"
	if n%5 == 0 {
		status = "inactive"
	}
	u.Status = string(append(buf[:0], status...))
	u.CreatedAt = time.Date(2025, 1, int(n%28+1), 0, 0, 0, 0, time.UTC)
	return nil
}

// GetByID is LoadUser into a new user.
func (r rowRepo) GetByID(ctx context.Context, id string) (*User, error) {
	u := &User{}
	if err := r.LoadUser(ctx, id, u); err != nil {
		return nil, err
	}
	return u, nil
}

// appendPadded appends v in base, zero-padded to width digits.
func appendPadded(b []byte, v uint64, base, width int) []byte {
	var digits [20]byte
	d := strconv.AppendUint(digits[:0], v, base)
	for i := len(d); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, d...)
}

// NewPoolService is a UserService with the guide's pool and the stand-in repository. The pool
// outlives each call, as a service's does.
func NewPoolService() *UserService {
	return &UserService{repo: rowRepo{}, userPool: NewUserPool()}
}

// UserIDs are the Rust port's ids (i*7 + 1), as the strings the guide's ProcessUsers takes.
func UserIDs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = strconv.FormatUint(uint64(i)*7+1, 10)
	}
	return out
}
