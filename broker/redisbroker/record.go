package redisbroker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/briskq/brisk/brisktype"
	"github.com/briskq/brisk/broker"
)

// A task is one STRING, {p:q}:t:<id>, holding its fields as a sequence of MessagePack
// values (no array header around them) in the order of record's fields: the enqueue
// encodes the values before the sequence number (encodeNew) and those after it (encodeTail)
// in Go, and its script puts the sequence number between; the scripts that change a task read it with cmsgpack.unpack and write
// it with cmsgpack.pack (luaTask); readers decode it in Go (decodeRecord). Strings are
// MessagePack str, numbers integers; an unset time or token is 0, an unset string "".
//
// One STRING per task instead of a HASH (plus a STRING for a payload too long for the
// HASH's compact encoding) is what makes a task cost one key, and a script read one GET:
// see doc.go, "Task records".

// recordFields is how many values a task record holds at most; a record may end after
// baseFields (a record written before retention, or with no value after the sequence set):
// a missing value is 0 or "".
const (
	recordFields = 21
	baseFields   = 16
)

// The 1-based positions of the values of a task record, as the Lua scripts index them
// (luaTask defines the same names).
const (
	fType        = 1  // TY  type (str)
	fPayload     = 2  // PL  payload (str)
	fMaxAttempts = 3  // MA  max attempts
	fTimeout     = 4  // TO  timeout, ns
	fEnqueuedAt  = 5  // EQ  enqueued at, µs
	fReadyAt     = 6  // RA  ready at, µs
	fHeaders     = 7  // HD  headers as a JSON object (str, "" for none)
	fAttempt     = 8  // AT  attempts begun
	fState       = 9  // S   q (pending or scheduled, by ready at), run, dead, cancelled
	fStartedAt   = 10 // ST  started at, µs
	fLeaseUntil  = 11 // LU  lease expiry, µs
	fToken       = 12 // TK  lease token (0: none)
	fWorker      = 13 // WK  worker id (str)
	fLastError   = 14 // LE  last error (str)
	fFailedAt    = 15 // FA  failed at, µs
	fSeq         = 16 // SEQ the task's sequence in its queue: its ZSET member is "<16-digit seq>:<id>"
	fRetention   = 17 // RT  the task's own retention, µs (0: its queue's)
	fFinishedAt  = 18 // FI  completed or cancelled at, µs
	fExpiresAt   = 19 // EX  removed at, µs (0: not kept for a retention)
	fProgress    = 20 // PG  last progress, "<percent> <at µs> <message>" ("" for none)
	fResult      = 21 // RS  result: "" for none, else "=" followed by its bytes
)

// luaTask defines, for the scripts, the names of a record's positions and
// getTask(key) (the record's values as a table, or nil when the key does not exist),
// putTask(key, v), putKept(key, v) (putTask for a task kept for a retention: Redis itself
// deletes the record at its expiry, so that a queue without traffic keeps nothing past its
// retention), expireWithLast(z) (a ZSET scored by expiry in µs expires with its last
// member) and memberOf(v, id) (the task's member in the queue's ZSETs). packTask
// leaves out the values after the sequence from the last one set on, so that a task that
// never had a retention, progress or result costs what it cost before they existed; a
// value between is written as nil (0xc0), which readers take for 0 or "".
const luaTask = `
local TY, PL, MA, TO, EQ, RA, HD, AT, S, ST, LU, TK, WK, LE, FA, SEQ = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16
local RT, FI, EX, PG, RS = 17, 18, 19, 20, 21
local function getTask(t)
  local s = redis.call('GET', t)
  if not s then return nil end
  return {cmsgpack.unpack(s)}
end
local function packTask(v)
  local n = 16
  for i = 21, 17, -1 do
    local x = v[i]
    if x ~= nil and x ~= 0 and x ~= '' then n = i; break end
  end
  return cmsgpack.pack(unpack(v, 1, n))
end
local function putTask(t, v) redis.call('SET', t, packTask(v)) end
local function putKept(t, v) redis.call('SET', t, packTask(v), 'PXAT', math.ceil(v[EX] / 1000)) end
local function expireWithLast(z)
  local top = redis.call('ZRANGE', z, -1, -1, 'WITHSCORES')
  if top[2] then redis.call('PEXPIREAT', z, math.ceil(tonumber(top[2]) / 1000)) end
end
local function memberOf(v, id) return string.format('%016d:', v[SEQ]) .. id end
`

// record is a task as stored.
type record struct {
	Type        string
	Payload     string
	MaxAttempts int64
	Timeout     int64
	EnqueuedAt  int64
	ReadyAt     int64
	Headers     string
	Attempt     int64
	State       string
	StartedAt   int64
	LeaseUntil  int64
	Token       int64
	Worker      string
	LastError   string
	FailedAt    int64
	Seq         int64
	Retention   int64
	FinishedAt  int64
	ExpiresAt   int64
	Progress    string
	Result      string
}

// encodeNew returns the record of a new task up to its sequence number, which the enqueue
// script appends, followed by encodeTail's values.
func encodeNew(t *broker.Task) string {
	hd := encodeHeaders(t.Headers)
	buf := make([]byte, 0, 64+len(t.Type)+len(t.Payload)+len(hd))
	buf = appendStr(buf, t.Type)
	buf = appendStr(buf, string(t.Payload))
	buf = appendInt(buf, int64(t.MaxAttempts))
	buf = appendInt(buf, int64(t.Timeout))
	buf = appendInt(buf, t.EnqueuedAt.UnixMicro())
	buf = appendInt(buf, t.ReadyAt.UnixMicro())
	buf = appendStr(buf, hd)
	buf = appendInt(buf, 0)   // attempt
	buf = appendStr(buf, "q") // state
	buf = appendInt(buf, 0)   // started at
	buf = appendInt(buf, 0)   // lease until
	buf = appendInt(buf, 0)   // token
	buf = appendStr(buf, "")  // worker
	buf = appendStr(buf, "")  // last error
	buf = appendInt(buf, 0)   // failed at
	return string(buf)
}

// encodeTail returns the values of a new task's record after its sequence number: its own
// retention, or nothing when it has none.
func encodeTail(t *broker.Task) string {
	if t.Retention <= 0 {
		return ""
	}
	return string(appendInt(nil, retentionUS(t.Retention)))
}

// retentionUS is a retention in µs as the scripts keep it, rounded up so that a positive
// retention stays positive.
func retentionUS(d time.Duration) int64 {
	return int64((d + time.Microsecond - 1) / time.Microsecond)
}

// encode returns the whole record, as the scripts' cmsgpack.pack writes it.
func (r *record) encode() string {
	buf := make([]byte, 0, 96+len(r.Type)+len(r.Payload)+len(r.Headers)+len(r.LastError))
	buf = appendStr(buf, r.Type)
	buf = appendStr(buf, r.Payload)
	buf = appendInt(buf, r.MaxAttempts)
	buf = appendInt(buf, r.Timeout)
	buf = appendInt(buf, r.EnqueuedAt)
	buf = appendInt(buf, r.ReadyAt)
	buf = appendStr(buf, r.Headers)
	buf = appendInt(buf, r.Attempt)
	buf = appendStr(buf, r.State)
	buf = appendInt(buf, r.StartedAt)
	buf = appendInt(buf, r.LeaseUntil)
	buf = appendInt(buf, r.Token)
	buf = appendStr(buf, r.Worker)
	buf = appendStr(buf, r.LastError)
	buf = appendInt(buf, r.FailedAt)
	buf = appendInt(buf, r.Seq)
	tail := []any{r.Retention, r.FinishedAt, r.ExpiresAt, r.Progress, r.Result}
	n := len(tail)
	for n > 0 && (tail[n-1] == int64(0) || tail[n-1] == "") {
		n--
	}
	for _, v := range tail[:n] {
		switch v := v.(type) {
		case int64:
			buf = appendInt(buf, v)
		case string:
			buf = appendStr(buf, v)
		}
	}
	return string(buf)
}

// errRecord says a stored task record could not be decoded.
var errRecord = errors.New("malformed task record")

// decodeRecord decodes a stored task record.
func decodeRecord(s string) (record, error) {
	var r record
	d := decoder{s: s}
	strs := []*string{fType: &r.Type, fPayload: &r.Payload, fHeaders: &r.Headers, fState: &r.State,
		fWorker: &r.Worker, fLastError: &r.LastError, fProgress: &r.Progress, fResult: &r.Result}
	ints := []*int64{fMaxAttempts: &r.MaxAttempts, fTimeout: &r.Timeout, fEnqueuedAt: &r.EnqueuedAt,
		fReadyAt: &r.ReadyAt, fAttempt: &r.Attempt, fStartedAt: &r.StartedAt, fLeaseUntil: &r.LeaseUntil,
		fToken: &r.Token, fFailedAt: &r.FailedAt, fSeq: &r.Seq, fRetention: &r.Retention,
		fFinishedAt: &r.FinishedAt, fExpiresAt: &r.ExpiresAt}
	for f := 1; f <= recordFields; f++ {
		if f > baseFields && d.i == len(s) {
			break // the values after the sequence are optional
		}
		var err error
		switch {
		case f < len(strs) && strs[f] != nil:
			*strs[f], err = d.str()
		default:
			*ints[f], err = d.int()
		}
		if err != nil {
			return r, fmt.Errorf("%w: value %d: %w", errRecord, f, err)
		}
	}
	if d.i != len(s) {
		return r, fmt.Errorf("%w: %d bytes after the last value", errRecord, len(s)-d.i)
	}
	return r, nil
}

// task makes a broker task of the record of task id in queue; now tells pending from
// scheduled.
func (r *record) task(id, queue string, now time.Time) *broker.Task {
	t := &broker.Task{
		TaskInfo: brisktype.TaskInfo{
			ID:          id,
			Queue:       queue,
			Type:        r.Type,
			Payload:     []byte(r.Payload),
			Attempt:     int(r.Attempt),
			MaxAttempts: int(r.MaxAttempts),
			Timeout:     time.Duration(r.Timeout),
			EnqueuedAt:  usTimeOf(r.EnqueuedAt),
			ReadyAt:     usTimeOf(r.ReadyAt),
			StartedAt:   usTimeOf(r.StartedAt),
			LastError:   r.LastError,
			FailedAt:    usTimeOf(r.FailedAt),
			Headers:     decodeHeaders(r.Headers),
			Retention:   time.Duration(r.Retention) * time.Microsecond,
			FinishedAt:  usTimeOf(r.FinishedAt),
			ExpiresAt:   usTimeOf(r.ExpiresAt),
			Progress:    decodeProgress(r.Progress),
		},
	}
	if res, ok := strings.CutPrefix(r.Result, "="); ok {
		t.Result = []byte(res)
	}
	switch r.State {
	case "run":
		t.State = broker.StateRunning
		t.LeaseUntil = usTimeOf(r.LeaseUntil)
		t.Lease = broker.Lease{TaskID: id, Queue: queue, Token: strconv.FormatInt(r.Token, 10)}
	case "dead":
		t.State = broker.StateDead
	case "cancelled":
		t.State = broker.StateCancelled
	case "done":
		t.State = broker.StateCompleted
	default:
		if t.ReadyAt.After(now) {
			t.State = broker.StateScheduled
		} else {
			t.State = broker.StatePending
		}
	}
	return t
}

// expired says whether a task kept for a retention has passed its expiry at now (µs):
// readers hide it until a script removes it.
func (r *record) expired(nowUS int64) bool {
	return r.ExpiresAt != 0 && r.ExpiresAt <= nowUS
}

// encodeProgress returns a progress as a record keeps it: "<percent> <at µs> <message>".
func encodeProgress(p broker.Progress) string {
	return strconv.FormatFloat(p.Percent, 'g', -1, 64) + " " + strconv.FormatInt(p.At.UnixMicro(), 10) + " " + p.Message
}

// decodeProgress reverses encodeProgress; "" (or a malformed value) is no progress.
func decodeProgress(s string) *broker.Progress {
	pct, rest, ok1 := strings.Cut(s, " ")
	at, msg, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 {
		return nil
	}
	p, err1 := strconv.ParseFloat(pct, 64)
	a, err2 := strconv.ParseInt(at, 10, 64)
	if err1 != nil || err2 != nil {
		return nil
	}
	return &broker.Progress{Percent: p, Message: msg, At: usTimeOf(a)}
}

// usTimeOf turns stored microseconds into a time; 0 is the zero time.
func usTimeOf(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.UnixMicro(n)
}

// appendStr appends s as a MessagePack str, in the shortest form (as cmsgpack does).
func appendStr(b []byte, s string) []byte {
	switch n := len(s); {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		b = append(b, 0xd9, byte(n))
	case n <= math.MaxUint16:
		b = append(b, 0xda)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0xdb)
		b = binary.BigEndian.AppendUint32(b, uint32(n))
	}
	return append(b, s...)
}

// appendInt appends n as a MessagePack integer, in the shortest form (as cmsgpack does).
func appendInt(b []byte, n int64) []byte {
	switch {
	case n >= 0 && n <= 127:
		return append(b, byte(n))
	case n >= 0 && n <= math.MaxUint8:
		return append(b, 0xcc, byte(n))
	case n >= 0 && n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xcd), uint16(n))
	case n >= 0 && n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(n))
	case n >= 0:
		return binary.BigEndian.AppendUint64(append(b, 0xcf), uint64(n))
	case n >= -32:
		return append(b, byte(n))
	case n >= math.MinInt8:
		return append(b, 0xd0, byte(n))
	case n >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(b, 0xd1), uint16(n))
	case n >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(n))
	}
}

// decoder reads the MessagePack values of a task record: str (or bin) and integers
// (cmsgpack writes a Lua number that is not an integer as a float; it is truncated).
type decoder struct {
	s string
	i int
}

var errShort = errors.New("truncated")

// need returns the next n bytes.
func (d *decoder) need(n int) (string, error) {
	if n < 0 || len(d.s)-d.i < n {
		return "", errShort
	}
	v := d.s[d.i : d.i+n]
	d.i += n
	return v, nil
}

func (d *decoder) byte() (byte, error) {
	v, err := d.need(1)
	if err != nil {
		return 0, err
	}
	return v[0], nil
}

// uint reads a big-endian unsigned integer of n bytes.
func (d *decoder) uint(n int) (uint64, error) {
	v, err := d.need(n)
	if err != nil {
		return 0, err
	}
	var x uint64
	for i := 0; i < n; i++ {
		x = x<<8 | uint64(v[i])
	}
	return x, nil
}

func (d *decoder) str() (string, error) {
	c, err := d.byte()
	if err != nil {
		return "", err
	}
	var n uint64
	switch {
	case c&0xe0 == 0xa0:
		n = uint64(c & 0x1f)
	case c == 0xd9 || c == 0xc4:
		n, err = d.uint(1)
	case c == 0xda || c == 0xc5:
		n, err = d.uint(2)
	case c == 0xdb || c == 0xc6:
		n, err = d.uint(4)
	case c == 0xc0: // nil
		return "", nil
	default:
		return "", fmt.Errorf("type 0x%02x where a string belongs", c)
	}
	if err != nil {
		return "", err
	}
	return d.need(int(n))
}

func (d *decoder) int() (int64, error) {
	c, err := d.byte()
	if err != nil {
		return 0, err
	}
	var u uint64
	switch {
	case c <= 0x7f:
		return int64(c), nil
	case c >= 0xe0:
		return int64(int8(c)), nil
	case c == 0xc0: // nil
		return 0, nil
	case c == 0xcc:
		u, err = d.uint(1)
	case c == 0xcd:
		u, err = d.uint(2)
	case c == 0xce:
		u, err = d.uint(4)
	case c == 0xcf:
		u, err = d.uint(8)
	case c == 0xd0:
		u, err = d.uint(1)
		return int64(int8(u)), err
	case c == 0xd1:
		u, err = d.uint(2)
		return int64(int16(u)), err
	case c == 0xd2:
		u, err = d.uint(4)
		return int64(int32(u)), err
	case c == 0xd3:
		u, err = d.uint(8)
		return int64(u), err
	case c == 0xca:
		u, err = d.uint(4)
		return int64(math.Float32frombits(uint32(u))), err
	case c == 0xcb:
		u, err = d.uint(8)
		return int64(math.Float64frombits(u)), err
	default:
		return 0, fmt.Errorf("type 0x%02x where a number belongs", c)
	}
	if u > math.MaxInt64 {
		return 0, fmt.Errorf("integer %d out of range", u)
	}
	return int64(u), err
}
