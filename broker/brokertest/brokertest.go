// Package brokertest is the conformance suite that every brisk broker runs to show that it
// keeps the broker.Broker contract.
//
// A broker's own tests call Run with a Harness that knows how to make a fresh, isolated store
// and open a broker on it, the way the standard library's fstest.TestFS is given a file
// system:
//
//	func TestConformance(t *testing.T) {
//		brokertest.Run(t, brokertest.Harness{
//			NewURL: func(t testing.TB) string {
//				return "sqlite://" + filepath.Join(t.TempDir(), "brisk.db")
//			},
//			Open: broker.Open,
//		})
//	}
//
// Run checks, one file per area: enqueue order and atomicity, delayed tasks, reserve
// priorities and limits, leases, state transitions, statistics and queue latency, Wait,
// consumers in several processes, bad input, inspection and worker records, pausing queues,
// acking and reserving in one call, deleting queues, the store of dashboard samples,
// enqueuing inside the application's transaction, and a
// crash test in which brisk workers in real processes are killed with SIGKILL while they
// run tasks; then the optional capabilities:
// unique tasks (Capabilities.Unique, with processes racing for one key), cancellation
// (broker.Canceler, with a handler in another process stopped within a second), leader
// election (broker.Leader), periodic schedules (broker.ScheduleStore, with brisk.Scheduler
// in three processes whose leader is killed twice while 60 ticks of one second are
// counted), rate and concurrency limits (broker.Limiter, with consumers in three
// processes, one killed while it holds slots), completed tasks kept for a retention with
// their results (broker.Retainer) and the progress of running tasks
// (broker.ProgressReporter). Parts of the contract that are optional
// (broker.Reaper, broker.Pauser, broker.AckReserver, broker.QueueDeleter,
// broker.SampleStore, broker.TxEnqueuer and the above) are skipped with a message when a broker lacks them,
// never passed silently; so are the behaviours a broker does not declare in its
// broker.Capabilities: a test whose point is such a behaviour is skipped ("SKIPPED: … does
// not declare capability …"), and a single check inside a test is logged as "SKIPPED
// CHECK: …" while the rest of the test goes on.
//
// The multi-process check re-executes the test binary that called Run, selecting the same
// test with -test.run and telling the child its role through environment variables; Run
// therefore must be reachable from a top-level test whose name selects it, and does nothing
// but that role when the variables are set.
package brokertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/briskq/brisk/brisktype"
	"github.com/briskq/brisk/broker"
)

// Harness tells the suite how to get a fresh broker.
type Harness struct {
	// NewURL returns the URL of a fresh, empty, isolated store for one test (own file, key
	// prefix, vhost or schema).
	NewURL func(t testing.TB) string
	// Open opens a broker on a URL returned by NewURL (normally broker.Open after a blank
	// import).
	Open func(ctx context.Context, url string) (broker.Broker, error)
	// BeginTx, for a broker that implements broker.TxEnqueuer, begins transactions of the
	// application's own on the store at url: one of each kind the broker accepts (for
	// PostgreSQL a pgx.Tx and a *sql.Tx). The suite ends each one; BeginTx cleans up what
	// it opened when t ends. Nil for other brokers.
	BeginTx func(t testing.TB, url string) []AppTx
}

// AppTx is a transaction of the application's own, begun by Harness.BeginTx.
type AppTx struct {
	// Kind names the type of the transaction in messages ("pgx.Tx", "*sql.Tx").
	Kind string
	// Tx is what the application passes to EnqueueTx.
	Tx any
	// Commit and Rollback end the transaction.
	Commit, Rollback func(ctx context.Context) error
}

// suite carries what every area of the suite needs.
type suite struct {
	h Harness
	// runPath is the name of the test that called Run, so that a child process can be told
	// to run exactly that test again.
	runPath string
}

// Run runs the whole suite as subtests of t.
//
// When the environment variable BRISKTEST_ROLE is set, Run is inside a child process that
// the suite started itself: it plays that role and returns without running anything else.
func Run(t *testing.T, h Harness) {
	if role := os.Getenv(envRole); role != "" {
		runRole(t, h, role)
		return
	}
	if h.NewURL == nil || h.Open == nil {
		t.Fatal("brokertest: Harness needs both NewURL and Open")
	}
	s := &suite{h: h, runPath: t.Name()}
	// The slowest area first, so that it overlaps with the others.
	areas := []struct {
		name string
		run  func(*testing.T)
	}{
		{"Crash", s.testCrash},
		{"Periodic", s.testPeriodic},
		{"MultiProcess", s.testMultiProcess},
		{"Enqueue", s.testEnqueue},
		{"Reserve", s.testReserve},
		{"Lease", s.testLease},
		{"Transitions", s.testTransitions},
		{"Stats", s.testStats},
		{"Wait", s.testWait},
		{"BadInput", s.testBadInput},
		{"Inspect", s.testInspect},
		{"Workers", s.testWorkers},
		{"Pause", s.testPause},
		{"AckReserve", s.testAckReserve},
		{"TxEnqueue", s.testTxEnqueue},
		{"Unique", s.testUnique},
		{"Cancel", s.testCancel},
		{"Leader", s.testLeader},
		{"RateLimit", s.testRateLimit},
		{"Concurrency", s.testConcurrency},
		{"DeleteQueue", s.testDeleteQueue},
		{"Samples", s.testSamples},
		{"Retention", s.testRetention},
		{"Results", s.testResults},
		{"Progress", s.testProgress},
	}
	for _, a := range areas {
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			a.run(t)
		})
	}
}

// NewID returns a fresh random task ID (32 hex digits). IDs are random rather than
// time-ordered so that a broker cannot pass the ordering checks by sorting on the ID.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// NewTask returns a task ready to enqueue: a fresh random ID, MaxAttempts 3, and EnqueuedAt
// and ReadyAt set to now.
func NewTask(queue, typ string, payload []byte) *broker.Task {
	now := time.Now().Round(0) // wall clock only, as a broker stores it
	return &broker.Task{
		TaskInfo: brisktype.TaskInfo{
			ID:          NewID(),
			Queue:       queue,
			Type:        typ,
			Payload:     payload,
			MaxAttempts: 3,
			EnqueuedAt:  now,
			ReadyAt:     now,
		},
	}
}

// NewTasks returns n tasks made by NewTask with payloads "0", "1", … so that a test can tell
// them apart by payload as well as by ID.
func NewTasks(queue, typ string, n int) []*broker.Task {
	tasks := make([]*broker.Task, n)
	for i := range tasks {
		tasks[i] = NewTask(queue, typ, []byte(itoa(i)))
	}
	return tasks
}
