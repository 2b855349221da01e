#!/usr/bin/env bash
# Runs brisk's whole test suite: formatting, go vet, and every test under the race detector.
#
# The embedded SQLite broker needs no server. Backends that need one (Redis, RabbitMQ,
# PostgreSQL) start it here when it is not running, and their tests fail rather than skip
# under CI when it cannot be reached.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './bench/*'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

echo "== go test -race"
set +e
go test -race -count=1 -timeout 40m ./... 2>&1 | tee /tmp/brisk-test.$$.log
status=${PIPESTATUS[0]}
set -e
passed=$(grep -c '^ok ' /tmp/brisk-test.$$.log || true)
failed=$(grep -c '^FAIL' /tmp/brisk-test.$$.log || true)
rm -f /tmp/brisk-test.$$.log
echo "packages: $passed passed, $failed failed"
exit "$status"
