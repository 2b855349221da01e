package pgbroker

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// MigrateTo brings the schema of rawURL to version v only, as an older brisk left it.
func MigrateTo(ctx context.Context, rawURL string, v int) error {
	opts, err := ParseURL(rawURL)
	if err != nil {
		return err
	}
	opts, err = opts.withDefaults()
	if err != nil {
		return err
	}
	conn, err := pgx.ConnectConfig(ctx, connConfig(opts))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = migrate(ctx, conn, opts.Schema, v)
	return err
}

// Vacuum runs the broker's vacuum of its churning tables now, with the dead-row threshold
// over.
func (b *Broker) Vacuum(ctx context.Context, over int64) error { return b.vacuum(ctx, over) }
