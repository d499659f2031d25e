#!/usr/bin/env bash
# shellcheck disable=SC2154 # ip_*, netns_*, zt*_pid come from read_status's eval
# ztunnel.sh BUILD_DIR — the ztunnel benchmark of `make bench` (issue 4).
#
# One sandbox (meshctl up, tests/bench/ztunnel-mesh.yaml): a client pod on
# node-1 and a zm-echo server pod on node-2, in an ambient namespace (zt) and
# in a plain one. Four ways from client to server, measured in the same run:
#   direct   plain client -> plain server pod IP, nothing in between;
#   zmesh    zt client -> zt server pod IP: captured by node-1's ztunnel,
#            HBONE to node-2's ztunnel, out to the server;
#   haproxy  plain pods, a tcp-mode haproxy in each: plaintext in on the
#            client pod's 127.0.0.1, mTLS (TLS 1.3, both sides verified
#            against the sandbox CA) across, plaintext out to 127.0.0.1:8080
#            in the server pod;
#   stunnel  the same pair with stunnel;
#   relay    the haproxy pair without TLS (plaintext across): not a peer but
#            a ceiling, what any relay pair costs on this machine before it
#            encrypts anything.
# The peers use the zt workloads' own certificates (STATE/certs/zt/<sa>), the
# ones the ztunnels present, so only the proxy differs.
#
# Figures per variant: wrk requests/s, p50, p99 (50 keep-alive connections);
# the median latency of a request on a new connection; single-stream
# download speed of a 100 MB body (the median of rounds that take the
# variants in turn, so that a noisy moment of this shared machine does not
# land on one variant only); proxy CPU (utime+stime of both proxy
# processes, from /proc) per 10k requests and per GB; for zmesh also each
# ztunnel's RSS idle and with 1,000 open connections. ztunnel_report.py
# prints the table with ratios against the best peer and the issue's targets,
# and writes BUILD_DIR/bench-ztunnel.json.
#
# TCP congestion control: every variant runs with the same one, Linux's
# default (cubic) unless ZM_ZTBENCH_CC says otherwise, set in all of the
# sandbox's namespaces (a namespace other than the host's may only pick an
# algorithm from net.ipv4.tcp_allowed_congestion_control, so that list gets
# it for the run and is put back at exit). A host whose own default differs
# (this kind of VM ships BBR, paced by the kernel with a timer per packet
# as no fq qdisc is set up) gets a second single-stream measurement with
# its default, through a second ambient client pod so that ztunnel opens
# fresh HBONE connections under it; the report prints both.
#
# Everything started here runs in its own process group and is stopped by
# group id at exit; the sandbox is torn down (meshctl down) whatever the exit
# path. Steps are bounded (timeouts): the run takes about 2 minutes. Exit 0
# when the benchmark ran (targets not met are reported, not failed); 1 when
# it could not run or a variant could not be measured.
#
# Knobs (environment): ZM_ZTBENCH_SECONDS (10, wrk duration),
# ZM_ZTBENCH_NEWCONN (200), ZM_ZTBENCH_HOLD (1000 connections),
# ZM_ZTBENCH_CC (cubic; "host" keeps the host's default throughout).
set -euo pipefail

if [ $# -ne 1 ] || [ ! -d "$1" ]; then
    echo "usage: $0 BUILD_DIR  (a build directory already built, e.g. build)" >&2
    exit 2
fi
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
meshctl="$build/config/meshctl"
py=/usr/bin/python3
client_py="$here/ztunnel_client.py"
seconds=${ZM_ZTBENCH_SECONDS:-10}
newconn_n=${ZM_ZTBENCH_NEWCONN:-200}
hold_n=${ZM_ZTBENCH_HOLD:-1000}
bench_cc=${ZM_ZTBENCH_CC:-cubic}
host_cc=$(sysctl -n net.ipv4.tcp_congestion_control)
allowed_cc0=$(sysctl -n net.ipv4.tcp_allowed_congestion_control)
[ "$bench_cc" = host ] && bench_cc=$host_cc
if [ "$bench_cc" != "$host_cc" ] &&
    ! grep -qw "$bench_cc" /proc/sys/net/ipv4/tcp_available_congestion_control; then
    modprobe "tcp_$bench_cc" 2>/dev/null || true
fi
big=104857600 # the 100 MB object: zm-echo pads its reply to ?size=N
downloads=7   # single-stream rounds; the median speed per variant is reported
app_port=8080
json_out="$build/bench-ztunnel.json"

log() { printf 'ztbench: %s\n' "$*" >&2; }
die() {
    log "$*"
    exit 1
}

export ZMESH_PREFIX="zmb-$$"
work=$(mktemp -d "${TMPDIR:-/tmp}/zm-ztbench.XXXXXX")
state="$work/state"
results="$work/results" # key=value lines, turned into the report by ztunnel_report.py
: >"$results"
sandbox_up=false

# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"

cleanup() {
    local rc=$?
    stop_started
    if [ $sandbox_up = true ]; then
        timeout 60 "$meshctl" down --state "$state" >/dev/null 2>&1 ||
            log "meshctl down failed (prefix $ZMESH_PREFIX, state $state kept)"
    fi
    # After the namespaces are gone: the kernel keeps an algorithm in the
    # list while some namespace still has it as its default.
    [ "$(sysctl -n net.ipv4.tcp_allowed_congestion_control)" = "$allowed_cc0" ] ||
        sysctl -qw net.ipv4.tcp_allowed_congestion_control="$allowed_cc0" ||
        log "could not restore net.ipv4.tcp_allowed_congestion_control to '$allowed_cc0'"
    [ -e "$state/sandbox.json" ] || rm -rf "$work"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ticks_pid PID: utime+stime of a process (all its threads) and its reaped
# children; 0 when it is gone.
ticks_pid() {
    local line
    { read -r line <"/proc/$1/stat"; } 2>/dev/null || {
        echo 0
        return
    }
    local -a f
    read -r -a f <<<"${line##*) }" # after comm, which may hold spaces
    echo $((f[11] + f[12] + f[13] + f[14]))
}

# ticks_group PGID: the same summed over every process of a group.
ticks_group() {
    local g=$1 total=0 p line
    local -a f
    for p in /proc/[0-9]*/stat; do
        { read -r line <"$p"; } 2>/dev/null || continue
        read -r -a f <<<"${line##*) }"
        [ "${f[2]}" = "$g" ] || continue
        total=$((total + f[11] + f[12] + f[13] + f[14]))
    done
    echo "$total"
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# ---- the sandbox ----------------------------------------------------------

# Sets ip_<ns>_<pod>, netns_<ns>_<pod>, zt1_pid, zt2_pid from status --json.
read_status() {
    local out
    out=$("$meshctl" status --json --state "$state") || die "meshctl status failed"
    eval "$("$py" -c '
import json, sys
st = json.loads(sys.argv[1])
for p in st["pods"]:
    k = "%s_%s" % (p["namespace"], p["name"])
    print("ip_%s=%s netns_%s=%s" % (k, p["ip"], k, p["netns"]))
for p in st.get("processes", []):
    if p["kind"] == "ztunnel" and p.get("alive"):
        print("zt%s_pid=%d" % (p["component"][-1], p["pid"]))' "$out")"
    if [ -z "${zt1_pid:-}" ] || [ -z "${zt2_pid:-}" ]; then
        die "no live ztunnel on node-1 and node-2"
    fi
}

sandbox() {
    # 1,000 held connections need fds in the apps and ztunnels, which
    # inherit our limit.
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    log "sandbox up (prefix $ZMESH_PREFIX)"
    sandbox_up=true
    timeout 60 "$meshctl" up -f "$here/ztunnel-mesh.yaml" --state "$state" >"$work/up.log" 2>&1 ||
        {
            cat "$work/up.log" >&2
            die "meshctl up failed"
        }
    read_status
}

# sandbox_cc CC: the default congestion control of every sandbox namespace
# (sockets made from now on; ztunnel's pod-local legs keep the algorithm
# its config gives them).
sandbox_cc() {
    local cc=$1 ns allowed
    allowed=$(sysctl -n net.ipv4.tcp_allowed_congestion_control)
    [[ " $allowed " == *" $cc "* ]] ||
        sysctl -qw net.ipv4.tcp_allowed_congestion_control="$allowed $cc" ||
        die "cannot allow TCP congestion control '$cc' in namespaces"
    for ns in $(ip netns list | awk -v p="$ZMESH_PREFIX-" 'index($1, p) == 1 { print $1 }'); do
        ip netns exec "$ns" sysctl -qw net.ipv4.tcp_congestion_control="$cc" ||
            die "cannot set TCP congestion control '$cc' in $ns"
    done
}

# hbone_cc NETNS: the congestion control(s) of the pod's connections to
# port 15008 (ztunnel's HBONE), as the kernel reports them.
hbone_cc() {
    ip netns exec "$1" ss -tinH state established '( dport = :15008 )' |
        grep -oE '[a-z0-9_]+ wscale' | awk '{ print $1 }' | sort -u | paste -sd+ -
}

# ---- the peers ------------------------------------------------------------

certs() {
    local c="$state/certs/zt"
    for f in client/cert.pem client/key.pem server/cert.pem server/key.pem client/ca.pem; do
        [ -s "$c/$f" ] || die "$c/$f missing"
    done
    cat "$c/client/cert.pem" "$c/client/key.pem" >"$work/client.pem"
    cat "$c/server/cert.pem" "$c/server/key.pem" >"$work/server.pem"
    cp "$c/client/ca.pem" "$work/ca.pem"
    cert_dir=$c
}

# haproxy in tcp mode, 2 threads each (ztunnel runs a worker per core),
# TLS 1.3 only, no logs.
start_haproxy() {
    local common="global
    nbthread 2
    maxconn 4096
    ssl-default-bind-options ssl-min-ver TLSv1.3
    ssl-default-server-options ssl-min-ver TLSv1.3
defaults
    mode tcp
    timeout connect 5s
    timeout client 120s
    timeout server 120s
"
    printf '%s\n' "$common" "frontend in" "    bind 127.0.0.1:$hap_port" \
        "    default_backend out" "backend out" \
        "    server s $ip_plain_server:$hap_tls ssl crt $work/client.pem ca-file $work/ca.pem verify required" \
        >"$work/haproxy-client.cfg"
    printf '%s\n' "$common" "frontend in" \
        "    bind $ip_plain_server:$hap_tls ssl crt $work/server.pem ca-file $work/ca.pem verify required" \
        "    default_backend app" "backend app" "    server app 127.0.0.1:$app_port" \
        >"$work/haproxy-server.cfg"
    start haproxy-server ip netns exec "$netns_plain_server" haproxy -db -f "$work/haproxy-server.cfg"
    start haproxy-client ip netns exec "$netns_plain_client" haproxy -db -f "$work/haproxy-client.cfg"
}

# stunnel, threads (Debian's build), TLS 1.3 only, errors-only logging (it
# logs every connection at its default level).
start_stunnel() {
    local common="foreground = yes
pid =
debug = 3
sslVersionMin = TLSv1.3
socket = l:TCP_NODELAY=1
socket = r:TCP_NODELAY=1
"
    printf '%s\n' "$common" "[c]" "client = yes" "accept = 127.0.0.1:$stn_port" \
        "connect = $ip_plain_server:$stn_tls" "cert = $cert_dir/client/cert.pem" \
        "key = $cert_dir/client/key.pem" "CAfile = $work/ca.pem" "verify = 2" \
        >"$work/stunnel-client.conf"
    printf '%s\n' "$common" "[s]" "accept = $ip_plain_server:$stn_tls" \
        "connect = 127.0.0.1:$app_port" "cert = $cert_dir/server/cert.pem" \
        "key = $cert_dir/server/key.pem" "CAfile = $work/ca.pem" "verify = 2" \
        >"$work/stunnel-server.conf"
    start stunnel-server ip netns exec "$netns_plain_server" stunnel "$work/stunnel-server.conf"
    start stunnel-client ip netns exec "$netns_plain_client" stunnel "$work/stunnel-client.conf"
}

# The haproxy pair again, TLS left out: the relay ceiling.
start_relay() {
    local common="global
    nbthread 2
    maxconn 4096
defaults
    mode tcp
    timeout connect 5s
    timeout client 120s
    timeout server 120s
"
    printf '%s\n' "$common" "frontend in" "    bind 127.0.0.1:$rly_port" \
        "    default_backend out" "backend out" "    server s $ip_plain_server:$rly_tcp" \
        >"$work/relay-client.cfg"
    printf '%s\n' "$common" "frontend in" "    bind $ip_plain_server:$rly_tcp" \
        "    default_backend app" "backend app" "    server app 127.0.0.1:$app_port" \
        >"$work/relay-server.cfg"
    start relay-server ip netns exec "$netns_plain_server" haproxy -db -f "$work/relay-server.cfg"
    start relay-client ip netns exec "$netns_plain_client" haproxy -db -f "$work/relay-client.cfg"
}

# ---- measurement ----------------------------------------------------------

# Per variant: the client's netns, the URL base, the processes whose CPU
# counts as the proxy's.
declare -A v_netns=() v_url=()
variants=(direct zmesh haproxy stunnel relay)

proxy_ticks() {
    case $1 in
    direct) echo 0 ;;
    zmesh) echo $(($(ticks_pid "$zt1_pid") + $(ticks_pid "$zt2_pid"))) ;;
    *) echo $(($(ticks_group "${pgid[$1-client]}") + $(ticks_group "${pgid[$1-server]}"))) ;;
    esac
}

# check V: one request through V must be answered by the right server.
check() {
    local v=$1 out _
    for _ in $(seq 50); do
        if out=$(ip netns exec "${v_netns[$v]}" curl -s -m 3 "${v_url[$v]}/") && [[ $out == *'"pod":"server"'* ]]; then
            return 0
        fi
        sleep 0.1
    done
    incomplete "$v: no answer from the server through it: ${out:-nothing}"
    local n
    for n in "$v-client" "$v-server"; do
        [ -f "$work/$n.log" ] && tail -n 5 "$work/$n.log" >&2
    done
    return 1
}

measure() {
    local v=$1 ns=${v_netns[$1]} url=${v_url[$1]} t0 t1 out i
    local hostport=${url#http://}
    log "$v: new connections, wrk ${seconds}s"
    # Warm-up: handshakes, pools, caches, page faults.
    ip netns exec "$ns" wrk -t1 -c10 -d1s "$url/" >/dev/null 2>&1 || true

    if out=$(timeout 90 ip netns exec "$ns" "$py" "$client_py" newconn "${hostport%:*}" "${hostport##*:}" \
        "$newconn_n"); then
        record "$v.newconn" "$out"
    else
        incomplete "$v: new-connection run failed: $out"
    fi

    t0=$(proxy_ticks "$v")
    local z1=0 z2=0
    if [ "$v" = zmesh ]; then
        z1=$(ticks_pid "$zt1_pid") z2=$(ticks_pid "$zt2_pid")
    fi
    if timeout $((seconds + 30)) ip netns exec "$ns" wrk -t2 -c50 -d"${seconds}s" --latency "$url/" \
        >"$work/wrk-$v.txt" 2>&1 &&
        out=$("$py" "$client_py" wrk-parse <"$work/wrk-$v.txt"); then
        t1=$(proxy_ticks "$v")
        record "$v.wrk" "$out"
        record "$v.wrk.ticks" $((t1 - t0))
        if [ "$v" = zmesh ]; then
            record zmesh.wrk.ticks_per_node \
                "$(($(ticks_pid "$zt1_pid") - z1)),$(($(ticks_pid "$zt2_pid") - z2))"
        fi
    else
        incomplete "$v: wrk failed: $(tail -n 3 "$work/wrk-$v.txt" | tr '\n' ' ')"
    fi
}

# measure_streams KEY V...: single-stream downloads, each round taking
# every variant in turn; figures recorded as V.KEY.*.
measure_streams() {
    declare -A speeds=() bytes=() ticks=()
    local key=$1 i v out code sz sp t0
    shift
    log "single stream ($key): $downloads rounds of 100 MB through ${*}"
    for i in $(seq "$downloads"); do
        for v in "$@"; do
            t0=$(proxy_ticks "$v")
            if out=$(timeout 60 ip netns exec "${v_netns[$v]}" curl -s -o /dev/null -m 50 \
                -w '%{http_code} %{size_download} %{speed_download}' "${v_url[$v]}/?size=$big") &&
                read -r code sz sp <<<"$out" && [ "$code" = 200 ] && [ "$sz" = "$big" ]; then
                speeds[$v]="${speeds[$v]:+${speeds[$v]},}$sp"
                bytes[$v]=$((${bytes[$v]:-0} + sz))
                ticks[$v]=$((${ticks[$v]:-0} + $(proxy_ticks "$v") - t0))
            else
                incomplete "$v: 100 MB download $i failed: $out"
            fi
        done
    done
    for v in "$@"; do
        [ -n "${speeds[$v]:-}" ] || continue
        record "$v.$key.speeds" "${speeds[$v]}"
        record "$v.$key.bytes" "${bytes[$v]}"
        record "$v.$key.ticks" "${ticks[$v]}"
    done
}

# ztunnel RSS idle, then with hold_n idle keep-alive connections open from
# the zt client through both ztunnels to the server.
measure_rss() {
    record zmesh.rss_idle_kb "$(rss_kb "$zt1_pid"),$(rss_kb "$zt2_pid")"
    log "zmesh: RSS with $hold_n open connections"
    local fifo="$work/hold.in" line=""
    mkfifo "$fifo"
    start_input=$fifo start holder ip netns exec "$netns_zt_client" "$py" "$client_py" hold \
        "$ip_zt_server" "$app_port" "$hold_n" 90
    exec 9>"$fifo" # the holder idles until this closes
    # The holder's stdout goes to its log: wait (bounded) for "ready N".
    for _ in $(seq 600); do
        line=$(grep -m1 '^ready' "$work/holder.log" 2>/dev/null || true)
        [ -n "$line" ] && break
        kill -0 "${pgid[holder]}" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$line" ]; then
        incomplete "the connection holder did not get ready: $(tail -n 2 "$work/holder.log")"
    else
        sleep 0.5 # let both ztunnels settle
        record zmesh.rss_held "${line#ready },$(rss_kb "$zt1_pid"),$(rss_kb "$zt2_pid")"
    fi
    exec 9>&-
}

# ---- main -----------------------------------------------------------------

main() {
    [ "$(id -u)" = 0 ] || die "needs root (network namespaces)"
    [ -x "$meshctl" ] || die "$meshctl not built"
    local tool
    for tool in wrk curl haproxy stunnel ip "$py"; do
        command -v "$tool" >/dev/null || die "$tool not installed: run scripts/setup.sh"
    done
    record host.cpu "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    record host.cores "$(nproc)"
    record host.haproxy "$(haproxy -v 2>/dev/null | head -n1)"
    record host.stunnel "$(stunnel -version 2>&1 | grep -m1 '^stunnel')"
    record clk_tck "$(getconf CLK_TCK)"
    record seconds "$seconds"

    sandbox
    record zmesh.rss_start_kb "$(rss_kb "$zt1_pid"),$(rss_kb "$zt2_pid")"
    record host.tcp_congestion "$host_cc"
    if ! grep -qw "$bench_cc" /proc/sys/net/ipv4/tcp_available_congestion_control; then
        record "note.cc" "TCP congestion control '$bench_cc' is not available on this kernel: the run uses the host's, $host_cc"
        bench_cc=$host_cc
    fi
    record tcp_congestion "$bench_cc"
    [ "$bench_cc" = "$host_cc" ] || sandbox_cc "$bench_cc"
    certs
    hap_port=15101 hap_tls=15443 stn_port=15102 stn_tls=15444 rly_port=15103 rly_tcp=15445
    v_netns=([direct]=$netns_plain_client [zmesh]=$netns_zt_client
        [haproxy]=$netns_plain_client [stunnel]=$netns_plain_client
        [relay]=$netns_plain_client)
    v_url=([direct]="http://$ip_plain_server:$app_port" [zmesh]="http://$ip_zt_server:$app_port"
        [haproxy]="http://127.0.0.1:$hap_port" [stunnel]="http://127.0.0.1:$stn_port"
        [relay]="http://127.0.0.1:$rly_port")
    start_haproxy
    start_stunnel
    start_relay

    local v working=()
    for v in "${variants[@]}"; do
        if check "$v"; then
            measure "$v"
            working+=("$v")
        fi
    done
    [ ${#working[@]} -gt 0 ] && measure_streams stream "${working[@]}"
    record zmesh.hbone_cc "$(hbone_cc "$netns_zt_client")"
    measure_rss
    if [ "$bench_cc" != "$host_cc" ] && [ ${#working[@]} -gt 0 ]; then
        sandbox_cc "$host_cc"
        v_netns[zmesh]=$netns_zt_client2
        measure_streams stream_hostcc "${working[@]}"
        record zmesh.hbone_cc_hostcc "$(hbone_cc "$netns_zt_client2")"
    fi

    record complete "$complete"
    "$py" "$here/ztunnel_report.py" "$results" "$json_out"
    [ $complete = true ] || die "incomplete run: see the notes above"
}

main
