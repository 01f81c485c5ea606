package replayer

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/loupe-dev/loupe/store"
)

// userJSON is a user as the API shows it; never its password hash.
type userJSON struct {
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
}

func toUserJSON(u *store.User) userJSON {
	return userJSON{Name: u.Name, Role: string(u.Role), CreatedAt: time.UnixMilli(u.CreatedAt).UTC()}
}

// getMe answers with the signed-in user.
func (s *Server) getMe(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, toUserJSON(userOf(r)))
	return nil
}

// putMyPassword changes the signed-in user's password, from
// {"old", "new"}: the old one must match. The login goes on under a new
// cookie; the user's other logins end.
func (s *Server) putMyPassword(w http.ResponseWriter, r *http.Request) error {
	var in struct{ Old, New string }
	if err := readJSON(r, &in); err != nil {
		return err
	}
	me := userOf(r)
	if soon, err := s.auth.tooSoon(w, r); err != nil {
		return s.usersDown(r, err)
	} else if soon {
		return &Error{http.StatusTooManyRequests, "too many attempts; try again in " + w.Header().Get("Retry-After") + " seconds"}
	}
	u, err := s.auth.check(r.Context(), me.Name, in.Old)
	if err != nil {
		return s.usersDown(r, err)
	}
	if u == nil {
		return &Error{http.StatusForbidden, "the current password is wrong"}
	}
	if u.PasswordHash, err = HashPassword(in.New); err != nil {
		return &Error{http.StatusBadRequest, err.Error()}
	}
	if err := s.auth.users.UpdateUser(r.Context(), u); err != nil {
		return fmt.Errorf("update user: %w", err)
	}
	s.auth.forget(u.Name)
	http.SetCookie(w, s.auth.cookie(u, s.auth.secure(r)))
	s.log.Info("password changed", "user", u.Name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) error {
	users, err := s.auth.users.ListUsers(r.Context())
	if err != nil {
		return fmt.Errorf("list users: %w", err)
	}
	out := make([]userJSON, 0, len(users))
	for i := range users {
		out = append(out, toUserJSON(&users[i]))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// userInput is the body of POST and PATCH /api/users: a new user needs all
// three; a change gives what changes.
type userInput struct {
	Name     string  `json:"name"`
	Role     *string `json:"role"`
	Password *string `json:"password"`
}

// apply sets u's role and password hash from in, checking both.
func (in *userInput) apply(u *store.User) error {
	if in.Role != nil {
		role, err := store.ParseRole(*in.Role)
		if err != nil {
			return &Error{http.StatusBadRequest, err.Error()}
		}
		u.Role = role
	}
	if in.Password != nil {
		h, err := HashPassword(*in.Password)
		if err != nil {
			return &Error{http.StatusBadRequest, err.Error()}
		}
		u.PasswordHash = h
	}
	return nil
}

// postUser adds a user from {"name", "role", "password"}; 409 if the name
// is taken.
func (s *Server) postUser(w http.ResponseWriter, r *http.Request) error {
	var in userInput
	if err := readJSON(r, &in); err != nil {
		return err
	}
	if in.Role == nil || in.Password == nil {
		return &Error{http.StatusBadRequest, "name, role and password are required"}
	}
	if err := store.CheckUserName(in.Name); err != nil {
		return &Error{http.StatusBadRequest, err.Error()}
	}
	u := store.User{Name: in.Name, CreatedAt: s.now().UnixMilli()}
	if err := in.apply(&u); err != nil {
		return err
	}
	if err := s.auth.users.AddUser(r.Context(), &u); err != nil {
		if errors.Is(err, store.ErrExists) {
			return &Error{http.StatusConflict, fmt.Sprintf("user %q exists", u.Name)}
		}
		return fmt.Errorf("add user: %w", err)
	}
	s.log.Info("user added", "user", u.Name, "role", u.Role, "by", userOf(r).Name)
	writeJSON(w, http.StatusCreated, toUserJSON(&u))
	return nil
}

// patchUser changes a user's role or password, from {"role"?, "password"?}.
// The last admin keeps its role.
func (s *Server) patchUser(w http.ResponseWriter, r *http.Request) error {
	var in userInput
	if err := readJSON(r, &in); err != nil {
		return err
	}
	u, err := s.namedUser(r)
	if err != nil {
		return err
	}
	if err := in.apply(u); err != nil {
		return err
	}
	if err := s.auth.users.UpdateUser(r.Context(), u); err != nil {
		return userChangeError("update user", err)
	}
	s.auth.forget(u.Name)
	s.log.Info("user changed", "user", u.Name, "role", u.Role, "password", in.Password != nil, "by", userOf(r).Name)
	writeJSON(w, http.StatusOK, toUserJSON(u))
	return nil
}

// deleteUser deletes a user; not the last admin.
func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request) error {
	u, err := s.namedUser(r)
	if err != nil {
		return err
	}
	if err := s.auth.users.DeleteUser(r.Context(), u.Name); err != nil {
		return userChangeError("delete user", err)
	}
	s.auth.forget(u.Name)
	s.log.Info("user deleted", "user", u.Name, "by", userOf(r).Name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// namedUser is the user the request's path names; a 404 if none.
func (s *Server) namedUser(r *http.Request) (*store.User, error) {
	u, err := s.auth.users.User(r.Context(), r.PathValue("name"))
	if errors.Is(err, store.ErrNotFound) {
		return nil, &Error{http.StatusNotFound, "user not found"}
	}
	if err != nil {
		return nil, fmt.Errorf("read user: %w", err)
	}
	return u, nil
}

// userChangeError is the answer to an UpdateUser or DeleteUser (op) that
// failed: a 409 for the only admin (the store checks it, atomically with
// the change), a 404 for a user deleted since it was read.
func userChangeError(op string, err error) error {
	switch {
	case errors.Is(err, store.ErrLastAdmin):
		return &Error{http.StatusConflict, "this is the only admin; make another one first"}
	case errors.Is(err, store.ErrNotFound):
		return &Error{http.StatusNotFound, "user not found"}
	}
	return fmt.Errorf("%s: %w", op, err)
}
