package sqlitebroker_test

import (
	"path/filepath"
	"testing"

	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/broker/brokertest"
	_ "github.com/briskq/brisk/broker/sqlitebroker"
)

func TestConformance(t *testing.T) {
	brokertest.Run(t, brokertest.Harness{
		NewURL: func(t testing.TB) string {
			return "sqlite://" + filepath.Join(t.TempDir(), "brisk.db")
		},
		Open: broker.Open,
	})
}
