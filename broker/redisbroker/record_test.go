package redisbroker

import (
	"math"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/briskq/brisk/internal/redistest"
)

// sampleRecord has values of every MessagePack form the codec writes: short and long
// strings, small, large and negative integers.
var sampleRecord = record{
	Type: "email.send", Payload: strings.Repeat("p", 300), MaxAttempts: 25, Timeout: 30e9,
	EnqueuedAt: 1764770000000123, ReadyAt: 1764770000999999, Headers: `{"traceparent":"00-ab"}`,
	Attempt: 2, State: "run", StartedAt: 1764770001000000, LeaseUntil: 1764770011000000,
	Token: 70000, Worker: "host-1:42:7", LastError: strings.Repeat("e", 70000), FailedAt: -1, Seq: 255,
}

// TestRecordRoundTrip checks the Go codec against itself, for every integer form.
func TestRecordRoundTrip(t *testing.T) {
	t.Parallel()
	for _, n := range []int64{0, 1, 127, 128, 255, 256, math.MaxUint16, math.MaxUint16 + 1, math.MaxUint32,
		math.MaxUint32 + 1, math.MaxInt64, -1, -32, -33, math.MinInt8, math.MinInt8 - 1, math.MinInt16,
		math.MinInt16 - 1, math.MinInt32, math.MinInt32 - 1, math.MinInt64} {
		r := sampleRecord
		r.Token, r.FailedAt = n, n
		got, err := decodeRecord(r.encode())
		if err != nil || got != r {
			t.Errorf("decode(encode(record with %d)) = %+v, %v", n, got, err)
		}
	}
	for _, tail := range []record{
		{Retention: 3_600_000_000},
		{FinishedAt: 1764770002000000, ExpiresAt: 1764773602000000, Result: "=\x00\x01"},
		{Progress: "42.5 1764770001500000 halfway"},
	} {
		r := sampleRecord
		r.Retention, r.FinishedAt, r.ExpiresAt, r.Progress, r.Result = tail.Retention, tail.FinishedAt, tail.ExpiresAt, tail.Progress, tail.Result
		got, err := decodeRecord(r.encode())
		if err != nil || got != r {
			t.Errorf("decode(encode(record with %+v)) = %+v, %v", tail, got, err)
		}
	}
	for _, bad := range []string{"", sampleRecord.encode()[:40], sampleRecord.encode() + "\xc1", "\x01"} {
		if _, err := decodeRecord(bad); err == nil {
			t.Errorf("decodeRecord(%d bytes) succeeded, want an error", len(bad))
		}
	}
}

// TestRecordMatchesCmsgpack checks the Go codec against Redis's cmsgpack, which the
// scripts read and write records with: a record packed in Lua decodes in Go, and one
// encoded in Go unpacks in Lua to the same values and packs again to the same bytes.
func TestRecordMatchesCmsgpack(t *testing.T) {
	t.Parallel()
	opts, err := redis.ParseURL(redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	ctx := t.Context()
	r := sampleRecord
	enc := r.encode()
	again, err := rdb.Eval(ctx, luaTask+`
local v = {cmsgpack.unpack(ARGV[1])}
if #v ~= 16 or v[TY] ~= 'email.send' or v[RA] ~= 1764770000999999 or v[FA] ~= -1 or v[SEQ] ~= 255 then
  return redis.error_reply('unpacked ' .. #v .. ' values: ' .. tostring(v[TY]) .. ' ' .. tostring(v[RA]))
end
return packTask(v)`, nil, enc).Text()
	if err != nil {
		t.Fatal(err)
	}
	if again != enc {
		t.Errorf("cmsgpack.pack(cmsgpack.unpack(Go's record)) differs from Go's record")
	}
	fromLua, err := rdb.Eval(ctx, `return cmsgpack.pack('t', ARGV[1], 3, 0, 1764770000000123, 1764770000000123, '', 0, 'q', 0, 0, 0, '', '', 0, 42)`,
		nil, "payload").Text()
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeRecord(fromLua)
	want := record{Type: "t", Payload: "payload", MaxAttempts: 3, EnqueuedAt: 1764770000000123, ReadyAt: 1764770000000123, State: "q", Seq: 42}
	if err != nil || got != want {
		t.Errorf("decodeRecord(cmsgpack's) = %+v, %v; want %+v", got, err, want)
	}
	// The values after the sequence: packTask writes them up to the last one set, with
	// nil (0xc0) between, and leaves them out when none is set.
	for _, c := range []struct {
		lua  string
		want record
	}{
		{`v[PG] = '10 5 m'`, record{Progress: "10 5 m"}},
		{`v[S], v[FI], v[EX], v[RS] = 'done', 7, 9, '=r'`, record{State: "done", FinishedAt: 7, ExpiresAt: 9, Result: "=r"}},
		{`v[PG] = ''`, record{}},
	} {
		enc, err := rdb.Eval(ctx, luaTask+`
local v = {cmsgpack.unpack(ARGV[1])}
`+c.lua+`
return packTask(v)`, nil, fromLua).Text()
		if err != nil {
			t.Fatalf("%s: %v", c.lua, err)
		}
		got, err := decodeRecord(enc)
		w := want
		w.Progress, w.FinishedAt, w.ExpiresAt, w.Result = c.want.Progress, c.want.FinishedAt, c.want.ExpiresAt, c.want.Result
		if c.want.State != "" {
			w.State = c.want.State
		}
		if err != nil || got != w {
			t.Errorf("after %s: decodeRecord = %+v, %v; want %+v", c.lua, got, err, w)
		}
		if c.want == (record{}) && enc != fromLua {
			t.Errorf("after %s: the record grew to %d bytes from %d", c.lua, len(enc), len(fromLua))
		}
	}
}
