#!/usr/bin/env bash
# Runs brisk's whole test suite: formatting, go vet, and every test under the race detector.
#
# The embedded SQLite broker needs no server. Backends that need one (Redis, RabbitMQ,
# PostgreSQL) start it here when it is not running, and their tests fail rather than skip
# under CI when it cannot be reached.
set -euo pipefail
cd "$(dirname "$0")/.."

# install_pkg installs Debian packages when a command is missing.
install_pkg() {
	if [ "$(id -u)" = 0 ]; then
		apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
	else
		sudo apt-get update -qq >/dev/null && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
	fi
}

# ensure_redis starts a Redis on 127.0.0.1:6379 unless one answers there already.
ensure_redis() {
	command -v redis-server >/dev/null || { echo "installing redis-server"; install_pkg redis-server redis-tools; }
	if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then return; fi
	echo "starting redis-server on 127.0.0.1:6379"
	redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
		--dir /tmp --logfile /tmp/brisk-redis.log
	for _ in $(seq 50); do
		redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && return
		sleep 0.2
	done
	echo "redis-server did not answer on 127.0.0.1:6379 (see /tmp/brisk-redis.log)"; exit 1
}

# ensure_redis_cluster starts a Redis Cluster of three masters on 127.0.0.1:7001-7003 (no
# replicas, nothing kept on disk) unless one answers there with cluster_state:ok.
ensure_redis_cluster() {
	if redis-cli -h 127.0.0.1 -p 7001 cluster info 2>/dev/null | grep -q 'cluster_state:ok'; then return; fi
	echo "starting a Redis Cluster on 127.0.0.1:7001-7003"
	local dir=/tmp/brisk-redis-cluster
	for port in 7001 7002 7003; do
		redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1 || true
	done
	rm -rf "$dir" && mkdir -p "$dir"
	for port in 7001 7002 7003; do
		redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
			--cluster-enabled yes --cluster-config-file "$dir/nodes-$port.conf" \
			--dir "$dir" --logfile "$dir/redis-$port.log"
	done
	for port in 7001 7002 7003; do
		for _ in $(seq 50); do
			redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1 && break
			sleep 0.2
		done
	done
	redis-cli --cluster create 127.0.0.1:7001 127.0.0.1:7002 127.0.0.1:7003 \
		--cluster-replicas 0 --cluster-yes >"$dir/create.log" 2>&1 ||
		{ echo "redis-cli --cluster create failed:"; cat "$dir/create.log"; exit 1; }
	for _ in $(seq 100); do
		redis-cli -h 127.0.0.1 -p 7001 cluster info 2>/dev/null | grep -q 'cluster_state:ok' && return
		sleep 0.2
	done
	echo "the Redis Cluster on 127.0.0.1:7001-7003 did not reach cluster_state:ok (see $dir)"; exit 1
}

# ensure_rabbitmq starts RabbitMQ (127.0.0.1:5672, guest/guest) unless it answers there:
# the application alone when the node runs with it stopped, else the whole node.
ensure_rabbitmq() {
	command -v rabbitmq-server >/dev/null || { echo "installing rabbitmq-server"; install_pkg rabbitmq-server; }
	if (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then return; fi
	if rabbitmqctl -q status >/dev/null 2>&1; then
		echo "starting the RabbitMQ application"
		rabbitmqctl -q start_app >/dev/null 2>&1 || true
	else
		echo "starting rabbitmq-server"
		rabbitmq-server -detached >/dev/null 2>&1 || true
	fi
	for _ in $(seq 240); do
		if (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then return; fi
		sleep 0.5
	done
	echo "RabbitMQ did not answer on 127.0.0.1:5672 within 120s (see /var/log/rabbitmq)"; exit 1
}

# ensure_rabbitmq_management enables RabbitMQ's management plugin (the API from which the
# RabbitMQ broker reads running counts and the celery+amqp:// watcher reads its queues, and
# through which the tests clean up) unless its API answers already. Idempotent: enabling an
# enabled plugin is a no-op, and the plugin starts on the running node without a restart.
ensure_rabbitmq_management() {
	if curl -fsS -o /dev/null -u guest:guest http://127.0.0.1:15672/api/overview 2>/dev/null; then return; fi
	command -v rabbitmq-plugins >/dev/null || return 0
	echo "enabling rabbitmq_management"
	rabbitmq-plugins enable rabbitmq_management >/dev/null 2>&1 || true
	for _ in $(seq 120); do
		if curl -fsS -o /dev/null -u guest:guest http://127.0.0.1:15672/api/overview 2>/dev/null; then return; fi
		sleep 0.5
	done
	echo "RabbitMQ's management API did not answer on 127.0.0.1:15672 within 60s"; exit 1
}

# ensure_python_libs installs Debian's Celery and RQ (for /usr/bin/python3) for the tests of
# the Celery and RQ watchers and the live autoscaling tests of real Celery and RQ fleets.
ensure_python_libs() {
	if /usr/bin/python3 -c 'import celery, rq, redis' >/dev/null 2>&1; then return; fi
	echo "installing python3-celery python3-rq"
	install_pkg python3-celery python3-rq python3-redis
}

# ensure_postgres starts the local PostgreSQL cluster (127.0.0.1:5432) unless it answers
# there, installing Debian's postgresql when missing, and makes sure that the user postgres
# may connect over TCP without a password (trust, as the tests' default URL
# postgres://postgres@127.0.0.1:5432/test assumes) and that the database test exists.
# BRISK_POSTGRES_URL points the tests at another server instead.
ensure_postgres() {
	if [ -n "${BRISK_POSTGRES_URL:-}" ]; then return; fi
	command -v pg_ctlcluster >/dev/null || { echo "installing postgresql"; install_pkg postgresql; }
	local version
	version=$(ls /etc/postgresql | sort -V | tail -1)
	if ! pg_isready -q -h 127.0.0.1 -p 5432; then
		echo "starting PostgreSQL $version on 127.0.0.1:5432"
		pg_ctlcluster --skip-systemctl-redirect "$version" main start
		for _ in $(seq 60); do
			pg_isready -q -h 127.0.0.1 -p 5432 && break
			sleep 0.5
		done
		pg_isready -q -h 127.0.0.1 -p 5432 || { echo "PostgreSQL did not answer on 127.0.0.1:5432 (see /var/log/postgresql)"; exit 1; }
	fi
	if ! psql -h 127.0.0.1 -U postgres -d postgres -w -Atc 'SELECT 1' >/dev/null 2>&1; then
		echo "allowing the user postgres over TCP from 127.0.0.1 without a password (trust)"
		local hba
		hba=$(su postgres -c "psql -Atc 'SHOW hba_file'")
		sed -i '1i host all postgres 127.0.0.1/32 trust' "$hba"
		su postgres -c "psql -qc 'SELECT pg_reload_conf()'" >/dev/null
	fi
	if [ "$(psql -h 127.0.0.1 -U postgres -d postgres -w -Atc "SELECT 1 FROM pg_database WHERE datname = 'test'")" != 1 ]; then
		echo "creating the database test"
		psql -h 127.0.0.1 -U postgres -d postgres -w -qc 'CREATE DATABASE test'
	fi
}

# ensure_chromium installs Debian's Chromium (and a font, so screenshots have text) for the
# dashboard's browser test.
ensure_chromium() {
	if [ -x /usr/bin/chromium ] && fc-list 2>/dev/null | grep -qi dejavu; then return; fi
	echo "installing chromium"
	install_pkg chromium fonts-dejavu-core
}

echo "== services"
if [ -d broker/redisbroker ]; then ensure_redis; ensure_redis_cluster; fi
if [ -d broker/rabbitbroker ]; then ensure_rabbitmq; ensure_rabbitmq_management; fi
if [ -d broker/celerybroker ]; then ensure_python_libs; fi
if [ -d broker/pgbroker ]; then ensure_postgres; fi
if [ -d dashboard ]; then ensure_chromium; fi

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './bench/*'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

# The main module and otel/, the OpenTelemetry module (a module of its own so that brisk
# does not depend on OpenTelemetry).
echo "== go vet"
go vet ./...
(cd otel && go vet ./...)

# staticcheck, pinned (the same version as `make lint`); fetched through the module proxy.
echo "== staticcheck"
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
(cd otel && go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...)

# python/brisk.py's own tests, against a real brisk dashboard and brisk worker.
pystatus=0
if [ -d python ]; then
	echo "== python3 -m unittest (python/)"
	pybin=$(mktemp -d)
	go build -o "$pybin/brisk" ./cmd/brisk
	set +e
	BRISK_BIN="$pybin/brisk" python3 -m unittest discover -s python -v
	pystatus=$?
	set -e
	rm -rf "$pybin"
fi

echo "== go test -race"
set +e
{
	go test -race -count=1 -timeout 40m ./...
	main_status=$?
	(cd otel && go test -race -count=1 -timeout 10m ./...)
	otel_status=$?
	[ "$main_status" = 0 ] && [ "$otel_status" = 0 ]
} 2>&1 | tee /tmp/brisk-test.$$.log
status=${PIPESTATUS[0]}
set -e
passed=$(grep -c '^ok ' /tmp/brisk-test.$$.log || true)
failed=$(grep -c '^FAIL[[:space:]]' /tmp/brisk-test.$$.log || true)
rm -f /tmp/brisk-test.$$.log
if [ -d python ]; then # the Python suite counts as one package
	if [ "$pystatus" = 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); status=1; fi
fi
echo "packages: $passed passed, $failed failed"
exit "$status"
