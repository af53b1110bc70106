package inproc

import (
	"context"
	"time"
)

// User is the guide's User, one type for every snippet that uses it (the guide elides it):
// the fields the Rust ports have, the strings as a row scan leaves them, CreatedAt a
// time.Time as the guide's ListUsers formats it (users[…].CreatedAt.Format). lazy-alloc reads
// Username and Email; object-pool loads all five; the database experiments scan id, username,
// email and created_at.
type User struct {
	ID        string
	Username  string
	Email     string
	Status    string
	CreatedAt time.Time
}

// Reset is the guide's user.Reset (its body is elided): the zero User, the strings dropped.
func (u *User) Reset() {
	*u = User{}
}

// UserRepository is the guide's repo, with the methods its snippets call.
type UserRepository interface {
	LoadUser(ctx context.Context, id string, user *User) error
	GetByID(ctx context.Context, id string) (*User, error)
}

// UserService is the guide's service: its object-pool snippet gives it a repo and a pool,
// its validation snippet uses neither.
type UserService struct {
	repo     UserRepository
	userPool *UserPool
}
