#!/usr/bin/env bash
# Run every Go fuzz target (func FuzzXxx in *_test.go under internal/) for
# FUZZTIME each (default 50000x). Usage: FUZZTIME=20000x bash scripts/fuzz.sh
# FUZZTIME is an execution count (Nx) by default: with a duration, Go's fuzzing
# coordinator can race its own deadline and fail a clean run with "context
# deadline exceeded" (go.dev/issue/75804), which a loaded CI host hits.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZTIME=${FUZZTIME:-50000x}
GO=${GO:-go}

if [ ! -d internal ]; then
  echo "fuzz: no internal/ directory, nothing to fuzz"
  exit 0
fi

mapfile -t dirs < <(grep -l -r --include='*_test.go' '^func Fuzz' internal | xargs -r -n1 dirname | sort -u)
if [ "${#dirs[@]}" -eq 0 ]; then
  echo "fuzz: no fuzz targets found under internal/"
  exit 0
fi

count=0
for d in "${dirs[@]}"; do
  for target in $(grep -h -o '^func Fuzz[A-Za-z0-9_]*' "$d"/*_test.go | sed 's/^func //' | sort -u); do
    echo "=== fuzz ./$d $target ($FUZZTIME)"
    "$GO" test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "./$d"
    count=$((count + 1))
  done
done
echo "fuzz: $count targets ran for $FUZZTIME each, no failures"
