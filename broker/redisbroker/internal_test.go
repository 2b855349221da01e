package redisbroker

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/briskq/brisk/broker"
)

// crc16 is the CRC-16/XMODEM that Redis Cluster uses to map keys to slots.
func crc16(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc ^= uint16(c) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// keySlot is Redis Cluster's slot of a key: the CRC of its hash tag (the part between the
// first { and the next }, when not empty) or of the whole key, modulo 16384.
func keySlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16([]byte(key)) % 16384)
}

func TestKeySlot(t *testing.T) {
	t.Parallel()
	// Values from the Redis Cluster specification and CLUSTER KEYSLOT.
	for key, want := range map[string]int{"123456789": 12739, "foo": 12182, "{user1000}.following": 3443, "user1000": 3443} {
		if got := keySlot(key); got != want {
			t.Errorf("keySlot(%q) = %d, want %d", key, got, want)
		}
	}
}

func TestQueueKeysShareOneSlot(t *testing.T) {
	t.Parallel()
	k := keys{prefix: "brisk"}
	slots := map[int]string{}
	for _, q := range []string{"default", "critical", "a", "Az09_-.:x", strings.Repeat("q", 128)} {
		all := []string{k.ready(q), k.running(q), k.dead(q), k.meta(q), k.task(q, "0123abcd"),
			k.task(q, "id:with:colons"), k.workerTasks(q, "w-1")}
		slot := keySlot(all[0])
		for _, key := range all {
			if !strings.HasPrefix(key, "{brisk:"+q+"}:") {
				t.Errorf("key %q of queue %q does not start with the hash tag {brisk:%s}", key, q, q)
			}
			if got := keySlot(key); got != slot {
				t.Errorf("key %q is in slot %d, the queue's other keys in %d", key, got, slot)
			}
		}
		slots[slot] = q
	}
	if len(slots) < 3 {
		t.Errorf("5 queues share %d slots; want them spread (slots %v)", len(slots), slots)
	}
	for _, key := range []string{k.queues(), k.workers(), k.worker("w"), k.wake()} {
		if strings.Contains(key, "{") {
			t.Errorf("cross-queue key %q carries a hash tag", key)
		}
	}
}

func TestIDOf(t *testing.T) {
	t.Parallel()
	for member, want := range map[string]string{
		"0000000000000001:abc":      "abc",
		"0000000000000042:a:b:c":    "a:b:c",
		"0000000000000042:":         "",
		"12:short-sequence-member":  "short-sequence-member",
		"no-sequence-at-all-member": "no-sequence-at-all-member",
	} {
		if got := idOf(member); got != want {
			t.Errorf("idOf(%q) = %q, want %q", member, got, want)
		}
	}
}

func TestParseURL(t *testing.T) {
	t.Parallel()
	parse := func(raw string) (Options, error) {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("url.Parse(%q): %v", raw, err)
		}
		return parseURL(u)
	}
	good := []struct {
		url                string
		addr, user, pass   string
		db, maxPayload     int
		prefix             string
		tls                bool
		wantPoolSize       int
		wantPrefixDefault  bool
		wantPayloadDefault bool
	}{
		{url: "redis://127.0.0.1:6379/0", addr: "127.0.0.1:6379", wantPrefixDefault: true, wantPayloadDefault: true},
		{url: "redis://localhost/3?prefix=app1", addr: "localhost:6379", db: 3, prefix: "app1", wantPayloadDefault: true},
		{url: "redis://u:p%40ss@h:7000/2?prefix=a.b:c&max_payload=2048", addr: "h:7000", user: "u", pass: "p@ss", db: 2, prefix: "a.b:c", maxPayload: 2048},
		{url: "rediss://h:6380/1?prefix=tls", addr: "h:6380", db: 1, prefix: "tls", tls: true, wantPayloadDefault: true},
		{url: "redis://h:6379/0?pool_size=7&prefix=p", addr: "h:6379", prefix: "p", wantPoolSize: 7, wantPayloadDefault: true},
	}
	for _, c := range good {
		o, err := parse(c.url)
		if err != nil {
			t.Errorf("parseURL(%q): %v", c.url, err)
			continue
		}
		r := o.Redis
		if r.Addr != c.addr || r.Username != c.user || r.Password != c.pass || r.DB != c.db {
			t.Errorf("parseURL(%q): addr %q user %q password %q db %d; want %q %q %q %d", c.url, r.Addr, r.Username, r.Password, r.DB, c.addr, c.user, c.pass, c.db)
		}
		if (r.TLSConfig != nil) != c.tls {
			t.Errorf("parseURL(%q): TLS %v, want %v", c.url, r.TLSConfig != nil, c.tls)
		}
		if c.wantPoolSize != 0 && r.PoolSize != c.wantPoolSize {
			t.Errorf("parseURL(%q): pool size %d, want %d", c.url, r.PoolSize, c.wantPoolSize)
		}
		d, err := o.withDefaults()
		if err != nil {
			t.Errorf("parseURL(%q) gave options that do not validate: %v", c.url, err)
			continue
		}
		wantPrefix := c.prefix
		if c.wantPrefixDefault {
			wantPrefix = "brisk"
		}
		wantPayload := c.maxPayload
		if c.wantPayloadDefault {
			wantPayload = broker.DefaultMaxPayload
		}
		if d.Prefix != wantPrefix || d.MaxPayload != wantPayload {
			t.Errorf("parseURL(%q): prefix %q max payload %d, want %q %d", c.url, d.Prefix, d.MaxPayload, wantPrefix, wantPayload)
		}
	}
	for _, raw := range []string{
		"redis://h/0?bogus=1",
		"redis://h/0?prefix=",
		"redis://h/0?prefix=has%7Bbrace",
		"redis://h/0?prefix=a&prefix=b",
		"redis://h/0?max_payload=-1",
		"redis://h/0?max_payload=lots",
		"redis://h/notanumber",
		"http://h/0",
	} {
		_, err := parse(raw)
		if !errors.Is(err, broker.ErrInvalid) {
			t.Errorf("parseURL(%q) = %v, want an error wrapping ErrInvalid", raw, err)
		}
	}
}
