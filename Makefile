# brisk — make targets print what they do; `make` alone lists them.
.PHONY: help test lint bench peerbench pgbench demo

# STATICCHECK is the pinned version of honnef.co/go/tools that lint and the test command run.
STATICCHECK := v0.8.2

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

test: ## run the whole test suite (gofmt, vet, staticcheck, go test -race), starting servers it needs
	bash scripts/test.sh

lint: ## gofmt, go vet and staticcheck (pinned; the test command runs them too)
	@test -z "$$(gofmt -l .)" || (gofmt -l .; exit 1)
	go vet ./...
	go run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK) ./...
	cd otel && go vet ./... && go run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK) ./...
	cd bench && go vet ./... && go run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK) ./...

bench: ## run brisk bench W1–W5 on the embedded broker and the go benchmarks
	for w in W1 W2 W3 W4 W5; do go run ./cmd/brisk bench --workload $$w --json; done
	go test -run '^$$' -bench . -benchtime 2x ./...

peerbench: ## brisk against asynq, Celery and RQ on one Redis, then against Celery on RabbitMQ (bench/, ~15 min)
	cd bench && go run ./cmd/peerbench -json /tmp/peerbench.json
	cd bench && go run ./cmd/rabbitbench

pgbench: ## brisk on PostgreSQL against River on one database (bench/cmd/pgbench, ~12 min), then the 10-minute growth run
	cd bench && go run ./cmd/pgbench -json /tmp/pgbench.json
	cd bench && go run ./cmd/pgbench -workloads GROWTH

demo: ## the demo on the embedded broker
	go run ./cmd/brisk demo
