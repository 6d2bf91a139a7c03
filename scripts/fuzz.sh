#!/usr/bin/env bash
# Runs every fuzz target of the module for a short budget (FUZZTIME, default
# 100000 executions), one at a time as `go test -fuzz` requires.
#
# The budget is a count ("Nx") rather than a duration: with a duration, Go
# 1.26's coordinator races its own deadline and can fail a target with a bare
# "context deadline exceeded" and no crasher (go.dev/issue/75804, fixed in Go
# 1.27). A short minimisation budget keeps one large new input from stalling a
# run for the default 60 s.
set -euo pipefail
fuzztime=${FUZZTIME:-100000x}
n=0
while IFS= read -r line; do
	file=${line%%:*}
	name=$(sed -E 's/^func (Fuzz[A-Za-z0-9_]*)\(.*/\1/' <<<"${line#*:}")
	pkg=./$(dirname "$file")
	echo "fuzz: $pkg $name ($fuzztime)"
	go test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" -fuzzminimizetime=2s "$pkg"
	n=$((n + 1))
done < <(grep -rE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\(' pkg internal cmd 2>/dev/null | sort)
echo "fuzz: $n targets run"
