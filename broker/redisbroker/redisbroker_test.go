package redisbroker_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/broker/brokertest"
	_ "github.com/briskq/brisk/broker/redisbroker"
	"github.com/briskq/brisk/internal/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newURL returns the URL of a fresh namespace on the test Redis.
func newURL(t testing.TB) string {
	raw := redistest.URL(t)
	return redistest.WithPrefix(t, raw, redistest.NewPrefix(t, raw, "brisktest"))
}

func TestConformance(t *testing.T) {
	if os.Getenv("BRISKTEST_ROLE") == "" {
		redistest.URL(t) // skip or fail before the suite starts children
	}
	brokertest.Run(t, brokertest.Harness{
		NewURL: func(t testing.TB) string {
			if os.Getenv("BRISKTEST_ROLE") != "" {
				return ""
			}
			return newURL(t)
		},
		Open: broker.Open,
	})
}
