# Convenience targets; each is one go command you can also run yourself.
.PHONY: test test-short bench bench-relay bench-compare bench-kms bench-micro

test:            ## the full suite, as CI runs it
	go test -race ./...

test-short:      ## skip the long walks and the SIGKILL crash tests
	go test -short ./...

bench: bench-micro bench-relay bench-compare bench-kms   ## every benchmark in this repository

bench-micro:     ## go test benchmarks: quote verification, handshakes, codec, KMS handler
	go test ./attest/dcap ./atls ./wire ./kms -run - -bench . -benchtime 2s

bench-relay:     ## relay end to end, memory and durable
	go run ./bench relay --duration 2s
	go run ./bench durable --duration 2s

bench-compare:   ## relay against nats-server (apt-get install nats-server); rewrites docs/BENCHMARKS.md's table and chart
	go run ./bench compare --duration 1s --reps 3 --write docs/BENCHMARKS.md --png docs/relay-vs-nats.png

bench-kms:       ## kmsd encrypt/sign/batch next to raw AES-GCM and ECDSA
	go run ./bench kms --duration 3s
	go run ./bench attest --duration 3s
