#!/usr/bin/env bash
# run.sh BUILD_DIR — the zmesh benchmark (`make bench`), one run on this machine.
#
# 1. AEAD throughput of the wolfSSL zmesh links (zm-bench-aesgcm): the ceiling
#    of every TLS figure, and the check that the x86-64 assembly is in use.
# 2. HBONE on loopback, zmesh against a well-known peer: nghttpx in HTTP/2
#    forward-proxy mode (mTLS, same certificates and CA) whose CONNECTs go
#    through tinyproxy, because nghttpx cannot dial a CONNECT target itself.
#    The same client (zm-hbone-bench) drives both servers at the same target,
#    so only the server differs. CPU is read from /proc for each server's
#    process group; tinyproxy's hop is reported apart, since zmesh has no
#    such hop and lumping it in would flatter zmesh.
#
# Every process started here runs in its own process group (setsid) and is
# stopped by that group id on exit, whatever the exit path; the scratch
# directory goes too. Each step is bounded (timeouts, bounded polls): the
# whole run takes well under 3 minutes. Figures go to stdout as a table and to
# BUILD_DIR/bench.json. Exit 0 only when every figure was measured; missing
# zmesh binaries or a broken tunnel print why and exit 1 after reporting what
# could be measured.
#
# Knobs (environment): ZM_BENCH_SECONDS (5), ZM_BENCH_CONCURRENCY (16).
set -euo pipefail

usage() {
    echo "usage: $0 BUILD_DIR  (a build directory already built, e.g. build)" >&2
    exit 2
}
if [ $# -ne 1 ] || [ ! -d "$1" ]; then usage; fi

build=$(cd "$1" && pwd)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin="$build/tests/bench"
seconds=${ZM_BENCH_SECONDS:-5}
concurrency=${ZM_BENCH_CONCURRENCY:-16}
json_out="$build/bench.json"

work=$(mktemp -d "${TMPDIR:-/tmp}/zm-bench.XXXXXX")
results="$work/results" # key=value lines, turned into the report by report.py
: >"$results"
log() { printf 'bench: %s\n' "$*" >&2; }
# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"

cleanup() {
    stop_started
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_port NAME PORT: until PORT accepts (5 s at most) while NAME still runs.
wait_port() {
    local name=$1 port=$2 _
    for _ in $(seq 50); do
        (: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        alive "$name" || break
        sleep 0.1
    done
    log "$name did not listen on 127.0.0.1:$port; its log:"
    tail -n 20 "$work/$name.log" "$work/$name.file.log" >&2 2>/dev/null || true
    return 1
}

# free_ports N: N distinct free loopback ports, all bound at once so they differ.
free_ports() {
    "$py" -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$1"
}

# cpu_ticks GROUP: utime+stime of every live process of the group, plus what
# its reaped children used (cutime+cstime), so forked helpers are counted.
# /proc/PID/stat of a process already sums all of its threads.
cpu_ticks() {
    local g=$1 total=0 f line
    local -a fld
    for f in /proc/[0-9]*/stat; do
        { read -r line <"$f"; } 2>/dev/null || continue
        # comm (field 2) may hold spaces and ')': split after its last ')'.
        read -r -a fld <<<"${line##*) }"
        # fld[0] is field 3 (state): pgrp is field 5, utime..cstime 14..17.
        [ "${fld[2]}" = "$g" ] || continue
        total=$((total + fld[11] + fld[12] + fld[13] + fld[14]))
    done
    echo "$total"
}

ticks_to_s() { awk -v t="$1" -v hz="$clk_tck" 'BEGIN { printf "%.3f", t / hz }'; }

# ---- set-up ---------------------------------------------------------------

# Debian's python3 has python3-h2; a python3 earlier on PATH (pyenv) may not.
pick_python() {
    local p
    for p in /usr/bin/python3 python3; do
        if command -v "$p" >/dev/null && "$p" -c 'import h2' 2>/dev/null; then
            py=$p
            return 0
        fi
    done
    log "no python3 with the h2 module (Debian: python3-h2); run scripts/setup.sh"
    exit 1
}

record_host() {
    record host.cpu "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    record host.cores "$(nproc)"
    record host.kernel "$(uname -r)"
    record host.nghttpx "$(nghttpx --version 2>/dev/null | head -n1)"
    record host.tinyproxy "$(tinyproxy -v 2>/dev/null | head -n1)"
    record hbone.seconds "$seconds"
    record hbone.concurrency "$concurrency"
}

# AEAD figures; `nm` proves the assembly entry points were linked in (they are
# absent when the build uses Debian's shared libwolfssl).
bench_aead() {
    local exe="$bin/zm-bench-aesgcm" out
    if [ ! -x "$exe" ]; then
        incomplete "$exe missing: build first (make build)"
        return
    fi
    log "AEAD throughput (3 x 1 s)"
    if ! out=$(timeout 30 "$exe" --json --seconds 1); then
        incomplete "zm-bench-aesgcm failed"
        return
    fi
    "$py" -c '
import json, sys
for k, v in json.loads(sys.argv[1]).items():
    print("aead.%s=%s" % (k, str(v).lower() if isinstance(v, bool) else v))' "$out" >>"$results"
    # No grep -q: it would close the pipe early and pipefail would see nm's SIGPIPE.
    if nm "$exe" 2>/dev/null | grep ' T AES_GCM_encrypt_avx2$' >/dev/null; then
        record aead.asm_linked "yes (AES_GCM_encrypt_avx2 present)"
    else
        record aead.asm_linked "no (no AES_GCM_encrypt_avx2 symbol: shared or C-only wolfSSL?)"
    fi
}

# Certificates: zm-hbone-bench --mkcerts when built, else openssl with the same
# names and SPIFFE IDs, so the peer chain can still be checked without zmesh.
make_certs() {
    local d=$work/certs who
    mkdir -p "$d"
    if [ -x "$bin/zm-hbone-bench" ] && timeout 20 "$bin/zm-hbone-bench" --mkcerts "$d" \
        >"$work/mkcerts.log" 2>&1; then
        :
    else
        [ -x "$bin/zm-hbone-bench" ] && log "zm-hbone-bench --mkcerts failed; using openssl"
        openssl ecparam -name prime256v1 -genkey -noout -out "$d/ca.key" 2>/dev/null
        openssl req -x509 -new -key "$d/ca.key" -days 2 -subj /O=zmesh-bench/CN=bench-ca \
            -addext basicConstraints=critical,CA:TRUE \
            -addext keyUsage=critical,keyCertSign,cRLSign -out "$d/ca.pem" 2>/dev/null
        for who in server client; do
            openssl ecparam -name prime256v1 -genkey -noout -out "$d/$who.key" 2>/dev/null
            openssl req -new -key "$d/$who.key" -subj /O=zmesh-bench -out "$d/$who.csr" 2>/dev/null
            printf '%s\n' "subjectAltName=URI:spiffe://cluster.local/ns/bench/sa/$who" \
                "basicConstraints=critical,CA:FALSE" \
                "keyUsage=critical,digitalSignature,keyEncipherment" \
                "extendedKeyUsage=serverAuth,clientAuth" >"$d/$who.ext"
            openssl x509 -req -in "$d/$who.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
                -CAcreateserial -days 2 -extfile "$d/$who.ext" -out "$d/$who.pem" 2>/dev/null
        done
    fi
    for who in ca.pem server.pem server.key client.pem client.key; do
        [ -s "$d/$who" ] || { log "certificate set incomplete: $d/$who missing"; exit 1; }
    done
    certs=$d
}

# The CONNECT target both servers dial: zm-hbone-bench's target server when
# built (discards uploads starting with 'D', echoes the rest), else an echo
# server from the probe so the peer chain can at least be checked.
start_target() {
    if [ -x "$bin/zm-hbone-bench" ]; then
        start target "$bin/zm-hbone-bench" --serve-target "127.0.0.1:$tport"
    else
        start target "$py" "$here/h2_connect_probe.py" --serve-echo "$tport"
    fi
    wait_port target "$tport"
}

# The peer: tinyproxy as nghttpx's forward-proxy backend. It only allows the
# target port for CONNECT; logging goes to a file at the lowest volume.
start_tinyproxy() {
    cat >"$work/tinyproxy.conf" <<EOF
Port $fport
Listen 127.0.0.1
Timeout 60
MaxClients 1024
Allow 127.0.0.1
ConnectPort $tport
DisableViaHeader Yes
LogFile "$work/tinyproxy.file.log"
LogLevel Critical
PidFile "$work/tinyproxy.pid"
EOF
    start tinyproxy tinyproxy -d -c "$work/tinyproxy.conf"
    wait_port tinyproxy "$fport"
}

# nghttpx set as close to zmesh as its options allow: 2 workers (zmesh runs a
# worker per core), HBONE's windows (4 MiB stream, 16 MiB connection), enough
# backend connections per origin for every concurrent CONNECT (default 8
# would queue them), no Via header (zmesh adds none), no config file, no
# access log, no OCSP fetcher.
start_nghttpx() {
    start nghttpx nghttpx --conf=/dev/null --http2-proxy --workers=2 \
        --frontend="127.0.0.1,$nport" --backend="127.0.0.1,$fport" \
        --verify-client --verify-client-cacert="$certs/ca.pem" \
        --frontend-http2-window-size=4194304 \
        --frontend-http2-connection-window-size=16777216 \
        --backend-connections-per-host=1024 \
        --no-via --no-ocsp --log-level=WARN --errorlog-file="$work/nghttpx.errors" \
        "$certs/server.key" "$certs/server.pem"
    wait_port nghttpx "$nport"
}

start_zmesh() {
    start zmesh "$bin/zm-hbone-server" --listen "127.0.0.1:$zport" \
        --cert "$certs/server.pem" --key "$certs/server.key" --ca "$certs/ca.pem"
    wait_port zmesh "$zport"
}

# probe NAME PORT: an independent client (Python ssl + h2) must get an intact
# echo through the tunnel before the server is worth measuring.
probe() {
    local name=$1 port=$2 out
    if out=$(timeout 20 "$py" "$here/h2_connect_probe.py" --connect "127.0.0.1:$port" \
        --ca "$certs/ca.pem" --cert "$certs/client.pem" --key "$certs/client.key" \
        --target "127.0.0.1:$tport" --timeout 15 2>&1); then
        log "$name: $out"
        return 0
    fi
    incomplete "$name tunnel check failed: $out"
    tail -n 20 "$work/$name.log" >&2 || true
    if [ "$name" = nghttpx ]; then
        tail -n 20 "$work/nghttpx.errors" "$work/tinyproxy.log" "$work/tinyproxy.file.log" \
            >&2 2>/dev/null || true
    fi
    return 1
}

# ---- measurement ----------------------------------------------------------

# measure SIDE PORT MODE KEY: one zm-hbone-bench run against SIDE's server,
# with the CPU the server (and for nghttpx, tinyproxy) used meanwhile.
# Records SIDE.KEY.{bytes|streams,seconds,cpu} from the client's JSON line.
measure() {
    local side=$1 port=$2 mode=$3 key=$4 s0 s1 f0=0 f1=0 out
    local -a extra=()
    [ "$mode" = streams ] && extra=(--concurrency "$concurrency")
    log "$side: $mode for ${seconds}s"
    s0=$(cpu_ticks "${pgid[$side]}")
    [ "$side" = nghttpx ] && f0=$(cpu_ticks "${pgid[tinyproxy]}")
    if ! out=$(timeout $((seconds + 15)) "$bin/zm-hbone-bench" --connect "127.0.0.1:$port" \
        --cert "$certs/client.pem" --key "$certs/client.key" --ca "$certs/ca.pem" \
        --target "127.0.0.1:$tport" --mode "$mode" --seconds "$seconds" "${extra[@]}" \
        2>"$work/client-$side-$mode.err" | tail -n1); then
        incomplete "$side $mode run failed: $(tail -n3 "$work/client-$side-$mode.err" | tr '\n' ' ')"
        return
    fi
    s1=$(cpu_ticks "${pgid[$side]}")
    [ "$side" = nghttpx ] && f1=$(cpu_ticks "${pgid[tinyproxy]}")
    # The client's own rate field is not used: report.py derives rates from
    # the counts, so MB/s cannot be confused with Mbit/s.
    if ! "$py" -c '
import json, sys
side, key, mode = sys.argv[2:5]
d = json.loads(sys.argv[1])
count = "bytes" if mode == "throughput" else "streams"
print("%s.%s.%s=%d" % (side, key, count, int(d[count])))
print("%s.%s.seconds=%s" % (side, key, float(d["seconds"])))' "$out" "$side" "$key" "$mode" \
        >>"$results" 2>/dev/null; then
        incomplete "$side $mode: unexpected client output: $out"
        return
    fi
    record "$side.$key.cpu" "$(ticks_to_s $((s1 - s0)))"
    [ "$side" = nghttpx ] && record "tinyproxy.$key.cpu" "$(ticks_to_s $((f1 - f0)))"
    return 0
}

# hbone_compare HAVE_CLIENT HAVE_SERVER: check each tunnel, then measure.
hbone_compare() {
    local have_client=$1 have_server=$2 peer_ok=false zmesh_ok=false mode key
    # Peer chain first: it is the reference, and checks the certificates.
    if start_tinyproxy && start_nghttpx && probe nghttpx "$nport"; then
        peer_ok=true
    else
        incomplete "nghttpx + tinyproxy chain not working: no peer figures"
    fi
    if [ "$have_server" = true ]; then
        if start_zmesh && probe zmesh "$zport"; then
            zmesh_ok=true
        else
            incomplete "zm-hbone-server not working: no zmesh figures"
        fi
    fi
    [ "$have_client" = true ] || return 0
    # Alternate the sides so a drift in clock speed hits both alike.
    for mode in throughput streams; do
        key=tp
        if [ $mode = streams ]; then key=st; fi
        if [ $zmesh_ok = true ]; then measure zmesh "$zport" "$mode" "$key"; fi
        if [ $peer_ok = true ]; then measure nghttpx "$nport" "$mode" "$key"; fi
    done
}

# ---- main -----------------------------------------------------------------

main() {
    pick_python
    clk_tck=$(getconf CLK_TCK)
    record_host
    bench_aead

    local tool
    for tool in nghttpx tinyproxy openssl nm; do
        command -v "$tool" >/dev/null || { log "$tool not installed: run scripts/setup.sh"; exit 1; }
    done

    local have_client=true have_server=true
    if [ ! -x "$bin/zm-hbone-bench" ]; then
        have_client=false
        incomplete "$bin/zm-hbone-bench not built: no HBONE figures (it drives both servers)"
    fi
    if [ ! -x "$bin/zm-hbone-server" ]; then
        have_server=false
        incomplete "$bin/zm-hbone-server not built: zmesh HBONE figures unavailable"
    fi

    read -r tport fport nport zport <<<"$(free_ports 4)"
    make_certs
    if start_target; then
        hbone_compare "$have_client" "$have_server"
    else
        incomplete "the CONNECT target did not start: no HBONE figures"
    fi

    record complete "$complete"
    "$py" "$here/report.py" "$results" "$json_out"
    if [ $complete != true ]; then
        log "incomplete run: see the notes above"
        exit 1
    fi
}

main
