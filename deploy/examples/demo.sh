#!/usr/bin/env bash
# make demo: bring the bookinfo example up in network namespaces, send
# requests from one pod to every service by name, say who answered and
# through which proxies, show `meshctl status`, tear it all down (always:
# trap EXIT), then run the loopback HBONE/mTLS demo (zm-demo).
#
# Usage: deploy/examples/demo.sh [BUILD_DIR]   (default: build)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-build}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
MESHCTL="$BUILD/config/meshctl"
ZMDEMO="$BUILD/tests/demo/zm-demo"
REQUESTS=${ZMESH_DEMO_REQUESTS:-12}

bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

sandbox_demo() {
    STATE=$(mktemp -d /tmp/zmesh-demo-XXXXXX)
    export ZMESH_PREFIX="zmd-$$"
    # Whatever happens, the sandbox goes away.
    trap '"$MESHCTL" down --state "$STATE"; rm -rf "$STATE"' EXIT

    bold "meshctl up -f deploy/examples/bookinfo"
    "$MESHCTL" up -f "$ROOT/deploy/examples/bookinfo" --state "$STATE"

    VIA=$("$MESHCTL" status --json --state "$STATE" |
          python3 -c 'import json,sys; print(json.load(sys.stdin)["dataplane"])')

    bold "requests from productpage-v1-0 to every service, by name"
    "$MESHCTL" exec productpage-v1-0.bookinfo --state "$STATE" -- python3 -c '
import collections, json, sys, urllib.request as u
n, via = int(sys.argv[1]), sys.argv[2]
for svc in ("details", "ratings", "reviews", "productpage"):
    seen, fails = collections.Counter(), 0
    for i in range(n):
        try:
            r = json.loads(u.urlopen("http://%s:9080/demo?i=%d" % (svc, i), timeout=3).read())
            seen["%s (version %s)" % (r["pod"], r["version"] or "-")] += 1
        except OSError as e:
            fails += 1
    who = ", ".join("%s x%d" % kv for kv in sorted(seen.items()))
    print("  %-12s -> %s%s" % (svc, who, "  [%d failed]" % fails if fails else ""))
print("  path: %s" % via)
' "$REQUESTS" "$VIA"

    if [ "${VIA#ztunnel}" != "$VIA" ]; then
        bold "what the ztunnels saw (istio_tcp_connections_opened_total, :15020/metrics)"
        for node in $("$MESHCTL" status --json --state "$STATE" |
                      python3 -c 'import json,sys; print(" ".join(n["name"] for n in json.load(sys.stdin)["nodes"]))'); do
            ip netns exec "$ZMESH_PREFIX-node-$node" python3 -c '
import re, sys, urllib.request as u
text = u.urlopen("http://127.0.0.1:15020/metrics", timeout=3).read().decode()
for line in text.splitlines():
    if not line.startswith("istio_tcp_connections_opened_total{"):
        continue
    labels = dict(re.findall(r"(\w+)=\"([^\"]*)\"", line))
    print("  %-8s %-11s %-18s -> %-18s %-10s %s" % (sys.argv[1], labels["reporter"],
          labels["source_workload"], labels["destination_workload"],
          labels["connection_security_policy"], line.rsplit(" ", 1)[1]))
' "$node"
        done
    fi

    bold "meshctl status"
    "$MESHCTL" status --state "$STATE"

    bold "meshctl down"
    "$MESHCTL" down --state "$STATE" && echo "sandbox removed: namespaces, links, processes, files"
    rm -rf "$STATE"
    trap - EXIT
}

if [ "$(id -u)" = 0 ]; then
    sandbox_demo
else
    echo "the sandbox part of the demo needs root (network namespaces): skipped"
fi

bold "HBONE over mTLS on loopback (zm-demo)"
"$ZMDEMO"
