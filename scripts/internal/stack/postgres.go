package stack

import (
	"context"
	"fmt"
	"net/url"
	"regexp"

	"github.com/jackc/pgx/v5"
)

var dbNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// CreateDatabase creates the database name on the server of adminURL unless
// it exists, and returns its URL (adminURL with the database replaced).
func CreateDatabase(ctx context.Context, adminURL, name string) (string, error) {
	if !dbNameRE.MatchString(name) {
		return "", fmt.Errorf("stack: database name %q: use lowercase letters, digits and '_'", name)
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", fmt.Errorf("stack: parse database URL: %w", err)
	}
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", fmt.Errorf("stack: connect to %s: %w", u.Redacted(), err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return "", fmt.Errorf("stack: look for database %s: %w", name, err)
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
			return "", fmt.Errorf("stack: create database %s: %w", name, err)
		}
	}
	u.Path = "/" + name
	return u.String(), nil
}
