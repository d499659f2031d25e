#!/usr/bin/env bash
# fake_hbone_server.sh — a stand-in for zm-hbone-server, for selftest.sh only.
#
# Takes zm-hbone-server's command line and serves HBONE with nghttpx plus a
# tinyproxy of its own (any CONNECT port), so run.sh's "zmesh" side can be
# exercised before the real server exists; the ratios then come out near 1
# (less the tinyproxy hop, which this side counts as server CPU).
# run.sh starts it in its own process group and stops the group with TERM:
# the trap removes the scratch directory.
set -euo pipefail

while [ $# -gt 0 ]; do
    case $1 in
    --listen) listen=$2 ;;
    --cert) cert=$2 ;;
    --key) key=$2 ;;
    --ca) ca=$2 ;;
    *) echo "fake_hbone_server: unknown option $1" >&2; exit 2 ;;
    esac
    shift 2
done

dir=$(mktemp -d "${TMPDIR:-/tmp}/zm-fake-server.XXXXXX")
trap 'kill $(jobs -p) 2>/dev/null; wait; rm -rf "$dir"' EXIT
trap 'exit 0' TERM INT

port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf '%s\n' "Port $port" "Listen 127.0.0.1" "MaxClients 1024" "Allow 127.0.0.1" \
    "LogFile \"$dir/tp.log\"" "LogLevel Critical" >"$dir/tp.conf"
tinyproxy -d -c "$dir/tp.conf" &
nghttpx --conf=/dev/null --http2-proxy --workers=2 --frontend="${listen/:/,}" \
    --backend="127.0.0.1,$port" --verify-client --verify-client-cacert="$ca" \
    --frontend-http2-window-size=4194304 --frontend-http2-connection-window-size=16777216 \
    --backend-connections-per-host=1024 --no-via --no-ocsp --log-level=WARN "$key" "$cert" &
wait
