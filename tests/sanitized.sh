#!/usr/bin/env bash
# sanitized.sh ASAN_BUILD_DIR — `make asan`: every test of a sanitizer build
# (ASan + UBSan, both abort on error), the e2e ones included, so the daemons
# and tools those start run sanitized too.
#
# A report from a process the tests start (ztunnel, meshctl, zm-echo in the
# sandbox) would otherwise be lost: nothing watches their exit codes, and a
# leak is only reported as a process exits. So every sanitized process
# writes its reports to files (log_path) and any error found there fails
# the run, printed; LeakSanitizer's "Suppressions used" notes are not errors.
set -uo pipefail
[ $# -eq 1 ] && [ -d "$1" ] || {
    echo "usage: $0 ASAN_BUILD_DIR" >&2
    exit 2
}
build=$(cd "$1" && pwd)
reports="$build/sanitizer-reports"
rm -rf "$reports"
mkdir -p "$reports"
cd "$build" || exit 1
ASAN_OPTIONS="log_path=$reports/asan${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
    UBSAN_OPTIONS="log_path=$reports/ubsan:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}" \
    ctest --output-on-failure --timeout 300 -j 2
rc=$?
bad=0
for f in "$reports"/*; do
    [ -e "$f" ] || continue
    if grep -qE 'ERROR: |runtime error|SUMMARY: ' "$f"; then
        echo "sanitizer report $f:" >&2
        cat "$f" >&2
        bad=1
    fi
done
[ $bad = 0 ] || echo "sanitizer reports found (above): failing" >&2
[ $rc = 0 ] && [ $bad = 0 ]
