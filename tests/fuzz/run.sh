#!/usr/bin/env bash
# Runs every libFuzzer driver of a ZM_FUZZ=ON build for a bounded time:
#   tests/fuzz/run.sh <build dir> <seconds per driver>
# New inputs go to <build>/tests/fuzz/corpus/<name> (the seeds in
# tests/fuzz/corpus/<name> are read, never written); crashes, leaks and
# timeouts to <build>/tests/fuzz/artifacts/. Exits 1 if any driver failed.
set -u
build=${1:?build dir}
secs=${2:-60}
src=$(cd "$(dirname "$0")" && pwd)
out=$build/tests/fuzz
mkdir -p "$out/artifacts"
export LSAN_OPTIONS="suppressions=$src/lsan.supp"
failed=()
for bin in "$out"/fuzz_*; do
    [ -x "$bin" ] || continue
    name=$(basename "$bin")
    short=${name#fuzz_}
    work=$out/corpus/$short
    mkdir -p "$work"
    dict=()
    [ -f "$src/$short.dict" ] && dict=(-dict="$src/$short.dict")
    log=$out/$name.log
    printf '%-22s %3ss ... ' "$name" "$secs"
    "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="$out/artifacts/$short-" "${dict[@]}" \
        "$work" "$src/corpus/$short" >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    if [ $rc -eq 0 ]; then
        echo "ok (${runs:-?} runs, ${cov:-cov: ?}, corpus $(ls "$work" | wc -l))"
    else
        echo "FAILED (exit $rc), log: $log"
        grep -E 'ERROR|SUMMARY|fuzz check failed|Test unit written' "$log" | head -5 | sed 's/^/    /'
        failed+=("$name")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: failed: ${failed[*]}"
    exit 1
fi
