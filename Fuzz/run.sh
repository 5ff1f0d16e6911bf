#!/usr/bin/env bash
# Builds the DaxshareWire libFuzzer target and runs it for a bounded time.
#   Fuzz/run.sh [SECONDS]     (default 60)
# Seeds are every vector in Protocol/vectors (valid and invalid). Exits non-zero if the build
# fails or libFuzzer finds a crash (the input is saved under Fuzz/corpus-run/artifacts/), and
# prints the number of executions and the rate.
set -euo pipefail

SECS="${1:-60}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
WORK="$HERE/corpus-run"
FLAGS=(-c release --package-path "$HERE" --scratch-path "$HERE/.build"
       -Xswiftc -sanitize=fuzzer,address -Xswiftc -g)

echo "fuzz: building (swift build ${FLAGS[*]})"
swift build "${FLAGS[@]}" --product DaxshareWireFuzz
BIN="$(swift build "${FLAGS[@]}" --show-bin-path)/DaxshareWireFuzz"

# Seeds: the hex of every .vec file (comment, codec and error lines dropped, "| note" cut).
rm -rf "$WORK/seeds"
mkdir -p "$WORK/seeds" "$WORK/corpus" "$WORK/artifacts"
n=0
for vec in "$ROOT"/Protocol/vectors/*.vec "$ROOT"/Protocol/vectors/invalid/*.vec; do
    [ -e "$vec" ] || continue
    hex="$(awk '/^#/ || /^codec:/ || /^error:/ { next } { sub(/\|.*/, ""); printf "%s", $0 }' "$vec" | tr -d ' \t\r')"
    printf '%b' "$(printf '%s' "$hex" | sed 's/\(..\)/\\x\1/g')" > "$WORK/seeds/$(basename "$vec" .vec)"
    n=$((n + 1))
done
echo "fuzz: $n seeds from Protocol/vectors; running for ${SECS}s"

LOG="$WORK/last-run.log"
set +e
ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}" "$BIN" \
    -max_total_time="$SECS" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 -max_len=70000 \
    -artifact_prefix="$WORK/artifacts/" "$WORK/corpus" "$WORK/seeds" >"$LOG" 2>&1
status=$?
set -e

execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$LOG" | tail -1)"
rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$LOG" | tail -1)"
if [ "$status" -ne 0 ]; then
    tail -40 "$LOG"
    echo "fuzz: FAILED (exit $status) after ${execs:-?} executions; crash input in $WORK/artifacts/"
    exit 1
fi
echo "fuzz: ok, ${execs:-?} executions in ${SECS}s (${rate:-?} exec/s), 0 crashes; corpus $(ls "$WORK/corpus" | wc -l) inputs"
