package postgres

import (
	"context"
	"fmt"

	"github.com/loupe-dev/loupe/store"
)

// Sessions lists the sessions f selects in f's order (newest first by
// default, sessions without events last).
func (db *DB) Sessions(ctx context.Context, f store.SessionFilter) ([]*store.Session, error) {
	if err := f.Check(); err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = defaultLimit
	}
	limit = min(limit, maxLimit)

	sq := store.BuildSessionQuery(&f, true)
	q := `SELECT ` + sessionColumns + ` FROM sessions`
	if sq.Where != "" {
		q += ` WHERE ` + sq.Where
	}
	args := append(sq.Args, limit, max(f.Offset, 0))
	q += fmt.Sprintf(` ORDER BY %s LIMIT $%d OFFSET $%d`, sq.OrderBy, len(args)-1, len(args))

	rows, err := db.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	defer rows.Close()
	ss := []*store.Session{}
	for rows.Next() {
		s, err := scanSession(rows)
		if err != nil {
			return nil, fmt.Errorf("list sessions: %w", err)
		}
		ss = append(ss, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	return ss, nil
}

// TagsOf returns the tags of each of the sessions that has any, sorted.
func (db *DB) TagsOf(ctx context.Context, ids []string) (map[string][]string, error) {
	out := map[string][]string{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := db.pool.Query(ctx, `SELECT session_id, tag FROM session_tags WHERE session_id = ANY($1) ORDER BY session_id, tag`, ids)
	if err != nil {
		return nil, fmt.Errorf("tags: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, tag string
		if err := rows.Scan(&id, &tag); err != nil {
			return nil, fmt.Errorf("tags: %w", err)
		}
		out[id] = append(out[id], tag)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("tags: %w", err)
	}
	return out, nil
}
