package redisbroker_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/broker/brokertest"
	_ "github.com/briskq/brisk/broker/redisbroker"
	"github.com/briskq/brisk/internal/redistest"
	"github.com/briskq/brisk/internal/testenv"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newURL returns the URL of a fresh namespace on the test Redis.
func newURL(t testing.TB) string {
	raw := redistest.URL(t)
	return testenv.WithPrefix(t, raw, redistest.NewPrefix(t, raw, "brisktest"))
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

// TestClusterConformance runs the suite against a Redis Cluster of three masters (the one
// scripts/test.sh starts, or $BRISK_REDIS_CLUSTER_URL).
func TestClusterConformance(t *testing.T) {
	if os.Getenv("BRISKTEST_ROLE") == "" {
		redistest.ClusterURL(t)
	}
	brokertest.Run(t, brokertest.Harness{
		NewURL: func(t testing.TB) string {
			if os.Getenv("BRISKTEST_ROLE") != "" {
				return ""
			}
			raw := redistest.ClusterURL(t)
			return testenv.WithPrefix(t, raw, redistest.NewPrefix(t, raw, "brisktest"))
		},
		Open: broker.Open,
	})
}
