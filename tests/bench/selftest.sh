#!/usr/bin/env bash
# selftest.sh BUILD_DIR — check run.sh itself, without the zmesh HBONE binaries.
#
# Case 1: a scratch build directory holds the real zm-bench-aesgcm plus the
# Python/nghttpx stand-ins from selftest/ under the names run.sh expects; the
# run must exit 0, and bench.json must be complete with every HBONE figure
# and ratio filled in. Case 2: the stand-ins are absent; the run must still
# report the AEAD figures and check the peer chain, then exit 1 and say why.
# The figures themselves mean nothing here (the client is Python).
set -euo pipefail

if [ $# -ne 1 ] || [ ! -x "$1/tests/bench/zm-bench-aesgcm" ]; then
    echo "usage: $0 BUILD_DIR  (built, with tests/bench/zm-bench-aesgcm)" >&2
    exit 2
fi
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
scratch=$(mktemp -d "${TMPDIR:-/tmp}/zm-bench-selftest.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

fail() { echo "selftest: FAIL: $*" >&2; exit 1; }

# check_json FILE EXPECT_COMPLETE: the JSON's shape and completeness.
check_json() {
    /usr/bin/python3 - "$1" "$2" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
want = sys.argv[2] == "true"
assert d["complete"] == want, "complete=%s" % d["complete"]
assert d["aead"]["aes_128_gcm_gbps"] > 0, "no AES figure"
h = d["hbone"]
if want:
    for side in ("zmesh", "nghttpx"):
        for k, v in h[side].items():
            assert v is not None and v > 0, "%s.%s = %s" % (side, k, v)
    for k, v in h["ratio_zmesh_over_nghttpx"].items():
        assert v is not None and v > 0, "ratio %s = %s" % (k, v)
    assert h["nghttpx_forward_proxy_tinyproxy"]["cpu_s_throughput"] is not None
else:
    assert h["zmesh"]["throughput_mbytes_per_s"] is None
    assert d["notes"], "no note says why the run is incomplete"
EOF
}

echo "selftest: case 1, stand-ins in place"
b1=$scratch/with-standins
mkdir -p "$b1/tests/bench"
ln -s "$build/tests/bench/zm-bench-aesgcm" "$b1/tests/bench/zm-bench-aesgcm"
ln -s "$here/selftest/fake_hbone_bench.py" "$b1/tests/bench/zm-hbone-bench"
ln -s "$here/selftest/fake_hbone_server.sh" "$b1/tests/bench/zm-hbone-server"
ZM_BENCH_SECONDS=2 ZM_BENCH_CONCURRENCY=8 bash "$here/run.sh" "$b1" || fail "run.sh exited $?"
check_json "$b1/bench.json" true || fail "bench.json of case 1"

echo "selftest: case 2, zmesh binaries missing"
b2=$scratch/without
mkdir -p "$b2/tests/bench"
ln -s "$build/tests/bench/zm-bench-aesgcm" "$b2/tests/bench/zm-bench-aesgcm"
rc=0
bash "$here/run.sh" "$b2" || rc=$?
[ $rc = 1 ] || fail "run.sh without zmesh binaries exited $rc, want 1"
check_json "$b2/bench.json" false || fail "bench.json of case 2"

# Nothing started by run.sh may outlive it.
leftover=$(pgrep -f "$scratch" || true)
[ -z "$leftover" ] || fail "processes left behind: $leftover"
echo "selftest: 2 passed, 0 failed"
