#!/usr/bin/env bash
# Runs every fuzz target of the module for a short time (FUZZTIME, default
# 10s), one at a time as `go test -fuzz` requires.
set -euo pipefail
fuzztime=${FUZZTIME:-10s}
n=0
while IFS= read -r line; do
	file=${line%%:*}
	name=$(sed -E 's/^func (Fuzz[A-Za-z0-9_]*)\(.*/\1/' <<<"${line#*:}")
	pkg=./$(dirname "$file")
	echo "fuzz: $pkg $name ($fuzztime)"
	go test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" "$pkg"
	n=$((n + 1))
done < <(grep -rE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\(' pkg internal cmd 2>/dev/null | sort)
echo "fuzz: $n targets run"
