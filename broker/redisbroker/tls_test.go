package redisbroker_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/broker/brokertest"
	"github.com/briskq/brisk/broker/redisbroker"
	"github.com/briskq/brisk/internal/testenv"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key into dir and
// returns their paths and a pool that trusts the certificate.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "brisk test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestTLSAndAuth starts a Redis of the test's own that speaks only TLS and requires a
// password, and checks that the broker works through it (commands and the Pub/Sub wake-up)
// and that a plain connection, an untrusted certificate and a wrong password each fail
// with a clear error.
func TestTLSAndAuth(t *testing.T) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		testenv.Missing(t, "no redis-server binary to start: %v", err)
	}
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	port := freePort(t)
	srv := exec.Command(bin, "--port", "0", "--tls-port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--tls-auth-clients", "no",
		"--requirepass", "s3cret", "--save", "", "--appendonly", "no", "--dir", dir)
	out := &strings.Builder{}
	srv.Stdout, srv.Stderr = out, out
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = srv.Process.Kill()
		_ = srv.Wait()
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !dialable(port) {
		if time.Now().After(deadline) {
			t.Fatalf("redis-server with TLS on port %d did not answer within 10s:\n%s", port, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ctx := t.Context()
	addr := fmt.Sprintf("127.0.0.1:%d", port)

	open := func(password string, tlsConf *tls.Config) (*redisbroker.Broker, error) {
		return redisbroker.OpenOptions(ctx, redisbroker.Options{
			Redis:       &redis.Options{Addr: addr, Password: password, TLSConfig: tlsConf},
			Prefix:      "tls",
			PingTimeout: 2 * time.Second,
		})
	}
	trusted := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}

	if _, err := redisbroker.Open(ctx, "redis://:s3cret@"+addr+"/0"); !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("Open without TLS on a TLS-only port = %v, want ErrUnavailable", err)
	}
	if _, err := redisbroker.Open(ctx, "rediss://:s3cret@"+addr+"/0"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Open over TLS with an untrusted certificate = %v, want an error about the certificate", err)
	} else {
		t.Logf("untrusted certificate: %v", err)
	}
	if _, err := open("wrong", trusted); !errors.Is(err, broker.ErrInvalid) || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Errorf("Open with a wrong password = %v, want an error wrapping ErrInvalid saying WRONGPASS", err)
	} else {
		t.Logf("wrong password: %v", err)
	}
	if _, err := open("", trusted); !errors.Is(err, broker.ErrInvalid) {
		t.Errorf("Open without the password = %v, want an error wrapping ErrInvalid", err)
	} else {
		t.Logf("no password: %v", err)
	}

	b, err := open("s3cret", trusted)
	if err != nil {
		t.Fatalf("Open over TLS with the password: %v", err)
	}
	defer b.Close()
	other, err := open("s3cret", trusted)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	task := brokertest.NewTask("q", "t", []byte("over tls"))
	if err := other.Enqueue(ctx, []*broker.Task{task}); err != nil {
		t.Fatal(err)
	}
	got, err := b.Reserve(ctx, broker.ReserveParams{Queues: []broker.QueueLimit{{Name: "q"}}, Limit: 1, Lease: time.Minute})
	if err != nil || len(got) != 1 || string(got[0].Payload) != "over tls" {
		t.Fatalf("Reserve over TLS = %d tasks, %v", len(got), err)
	}
	if err := b.Ack(ctx, []broker.Lease{got[0].Lease}); err != nil {
		t.Fatal(err)
	}
	if err := b.Wait(ctx, []string{"idle"}, 50*time.Millisecond); err != nil { // opens the subscription
		t.Fatal(err)
	}
	checkWakeUp(t, b, other, 5*time.Second)
}
