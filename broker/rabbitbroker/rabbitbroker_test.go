package rabbitbroker_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/broker/brokertest"
	"github.com/briskq/brisk/internal/rabbittest"
	"github.com/briskq/brisk/internal/testenv"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newURL returns the URL of a fresh store (its own prefix) on the test RabbitMQ.
func newURL(t testing.TB) string {
	raw := rabbittest.URL(t)
	rabbittest.ManagementURL(t, raw)
	prefix := rabbittest.NewPrefix(t, raw, "brisktest")
	return testenv.WithPrefix(t, raw, prefix)
}

func TestConformance(t *testing.T) {
	if os.Getenv("BRISKTEST_ROLE") == "" {
		rabbittest.URL(t) // skip or fail before the suite starts children
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
