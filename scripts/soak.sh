#!/usr/bin/env bash
# make soak: the end-to-end suite RUNS times in a row (default 20), then a
# summary of every failed test by run. A lab that flakes makes every
# end-to-end result doubtful: the target is no failure at all.
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
export MCOA_E2E=1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
fails=0
for i in $(seq 1 "$runs"); do
	start=$(date +%s)
	if go test -count=1 -timeout 20m ./e2e/ ./internal/lab/ >"$out/run$i.txt" 2>&1; then
		echo "soak: run $i/$runs passed in $(( $(date +%s) - start ))s"
	else
		fails=$((fails + 1))
		echo "soak: run $i/$runs FAILED in $(( $(date +%s) - start ))s:"
		grep -E '^\s*--- FAIL' "$out/run$i.txt" | sed 's/^/  /'
		cp "$out/run$i.txt" "soak-run$i.log"
	fi
done
echo "soak: $fails of $runs runs failed (logs of the failed ones: soak-run*.log)"
[ "$fails" -eq 0 ]
