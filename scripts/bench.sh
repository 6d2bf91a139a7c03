#!/usr/bin/env bash
# make bench: runs the Go benchmarks (and, when root, the lab's measurements),
# writes bench/results.md with the date and CPU model, and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
go test -run='^$' -bench=. -benchmem -benchtime="${BENCHTIME:-1s}" -timeout 20m ./pkg/... ./internal/... | tee "$out/go.txt"
extra=""
if [ -x bin/mcoa-lab ] && [ "$(id -u)" = 0 ] && bin/mcoa-lab help 2>&1 | grep -q '^  bench'; then
	# LABBENCH adds options, e.g. LABBENCH="-idle 10s -cycles 20" while iterating.
	# shellcheck disable=SC2086
	bin/mcoa-lab bench -md "$out/lab.md" ${LABBENCH:-} >/dev/null
	extra="$out/lab.md"
fi
go run ./scripts/benchtable -extra "$extra" < "$out/go.txt" > bench/results.md
cat bench/results.md
