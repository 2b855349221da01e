package pgbroker_test

import (
	"testing"

	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/broker/brokertest"
	"github.com/briskq/brisk/internal/pgtest"
)

// harness gives every test of the suite a schema of its own, dropped at its end.
func harness(t testing.TB) brokertest.Harness {
	raw := pgtest.URL(t)
	return brokertest.Harness{
		NewURL: func(t testing.TB) string {
			_, u := pgtest.NewSchema(t, raw, "conf")
			return u
		},
		Open: broker.Open,
	}
}

func TestConformance(t *testing.T) {
	brokertest.Run(t, harness(t))
}
