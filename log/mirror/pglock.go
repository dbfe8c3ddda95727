package mirror

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pgLock is a [Lock] in PostgreSQL: one row per log in table agentlog_lock,
// swapped by an UPDATE whose WHERE clause holds the previous Seq and
// Holder. PostgreSQL re-checks the clause after taking the row lock, so
// two concurrent swaps from the same state cannot both succeed, and a
// committed UPDATE is durable (with the default synchronous_commit).
type pgLock struct {
	pool *pgxpool.Pool
	name string
}

const pgSchema = `CREATE TABLE IF NOT EXISTS agentlog_lock (
	name       text PRIMARY KEY,
	checkpoint bytea,
	holder     text NOT NULL,
	seq        bigint NOT NULL,
	updated    timestamptz NOT NULL DEFAULT now()
)`

func openPGLock(ctx context.Context, dsn, name string) (*pgLock, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("lock URL %s: %w", redactURL(dsn), err)
	}
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to the lock database %s: %w", redactURL(dsn), err)
	}
	if _, err := pool.Exec(ctx, pgSchema); err != nil {
		pool.Close()
		return nil, fmt.Errorf("creating table agentlog_lock in %s: %w", redactURL(dsn), err)
	}
	return &pgLock{pool: pool, name: name}, nil
}

func (l *pgLock) Load(ctx context.Context) (LockState, error) {
	var st LockState
	var seq int64
	err := l.pool.QueryRow(ctx, `SELECT checkpoint, holder, seq FROM agentlog_lock WHERE name = $1`, l.name).Scan(&st.Checkpoint, &st.Holder, &seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return LockState{}, nil
	}
	if err != nil {
		return LockState{}, fmt.Errorf("reading the lock: %w", err)
	}
	st.Seq = uint64(seq)
	return st, nil
}

func (l *pgLock) Swap(ctx context.Context, prev, next LockState) (LockState, error) {
	if next.Seq != prev.Seq+1 {
		return LockState{}, fmt.Errorf("lock swap from seq %d to %d: must increase by one", prev.Seq, next.Seq)
	}
	var n int64
	if prev.Seq == 0 {
		tag, err := l.pool.Exec(ctx, `INSERT INTO agentlog_lock (name, checkpoint, holder, seq) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING`,
			l.name, next.Checkpoint, next.Holder, int64(next.Seq))
		if err != nil {
			return LockState{}, fmt.Errorf("swapping the lock: %w", err)
		}
		n = tag.RowsAffected()
	} else {
		tag, err := l.pool.Exec(ctx, `UPDATE agentlog_lock SET checkpoint = $2, holder = $3, seq = $4, updated = now() WHERE name = $1 AND seq = $5 AND holder = $6`,
			l.name, next.Checkpoint, next.Holder, int64(next.Seq), int64(prev.Seq), prev.Holder)
		if err != nil {
			return LockState{}, fmt.Errorf("swapping the lock: %w", err)
		}
		n = tag.RowsAffected()
	}
	if n != 1 {
		return LockState{}, fmt.Errorf("%w (it no longer holds seq %d of %q)", ErrLockChanged, prev.Seq, prev.Holder)
	}
	return next, nil
}

func (l *pgLock) Close() error {
	l.pool.Close()
	return nil
}
