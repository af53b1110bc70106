package inproc

import (
	"strconv"
	"strings"
)

// ValidationError says which user failed and on which field. The guide elides validateUser;
// this is how a Go engineer writes it: a pointer to an error struct, one small allocation per
// invalid user (the Rust port's error is a plain value and allocates nothing).
type ValidationError struct {
	Username string
	Field    string
}

func (e *ValidationError) Error() string {
	return "user " + e.Username + ": invalid " + e.Field
}

// validateUser is the rule the Rust port checks: a username of 3-32 bytes and an email with an @.
func (s *UserService) validateUser(user *User) error {
	if n := len(user.Username); n < 3 || n > 32 {
		return &ValidationError{Username: user.Username, Field: "username"}
	}
	if !strings.Contains(user.Email, "@") {
		return &ValidationError{Username: user.Username, Field: "email"}
	}
	return nil
}

// ValidateUsers is the guide's code as printed (应用层优化 › 避免不必要的内存分配).
func (s *UserService) ValidateUsers(users []*User) []error {
	var errors []error // 延迟分配，只在需要时分配

	for _, user := range users {
		if err := s.validateUser(user); err != nil {
			if errors == nil {
				errors = make([]error, 0, len(users)) // 首次分配
			}
			errors = append(errors, err)
		}
	}

	return errors
}

// ValidateUsersEager makes the list before the loop, errors or not.
func (s *UserService) ValidateUsersEager(users []*User) []error {
	errors := make([]error, 0, len(users))
	for _, user := range users {
		if err := s.validateUser(user); err != nil {
			errors = append(errors, err)
		}
	}
	return errors
}

// Users are the port's: permille of 1000 users invalid (a bad email), spread evenly.
func Users(permille int) []*User {
	out := make([]*User, 1000)
	for i := range out {
		bad := (i+1)*permille/1000 > i*permille/1000
		email := "user" + strconv.Itoa(i) + "@example.com"
		if bad {
			email = "user" + strconv.Itoa(i) + ".example.com"
		}
		out[i] = &User{Username: "user_" + pad6(i), Email: email}
	}
	return out
}

func pad6(i int) string {
	s := strconv.Itoa(i)
	for len(s) < 6 {
		s = "0" + s
	}
	return s
}
