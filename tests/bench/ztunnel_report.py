#!/usr/bin/python3
"""ztunnel_report.py: the ztunnel benchmark's table and bench-ztunnel.json.

ztunnel.sh only measures and appends `key=value` lines (values are numbers,
comma lists or one-line JSON); the arithmetic (CPU per unit of work, medians,
ratios against the best peer) and the target checks live here. A figure that
could not be measured is absent: it prints as "n/a", is null in the JSON,
and a target that needs it is "NOT MEASURED" (never MET).

"Best peer" is haproxy or stunnel, whichever did better on that row in the
same run. "relay" (the haproxy pair without TLS) is no peer: it shows what
a relay pair that encrypts nothing reaches on this machine, a ceiling the
single-stream target is compared with. Ratios are zmesh / best peer. CPU counts both proxies of a pair
(client side and server side), and both ztunnels for zmesh; the
per-ztunnel CPU target uses the busier of the two ztunnels.

Every variant runs with the same TCP congestion control (tcp_congestion);
when the host's default differs, the single stream was measured again with
it (V.stream_hostcc.*) and is reported on its own row and target line.

Usage: ztunnel_report.py RESULTS_FILE JSON_OUT
"""

import json
import statistics
import sys
import time

from results import load, div

VARIANTS = ("direct", "zmesh", "haproxy", "stunnel", "relay")
PEERS = ("haproxy", "stunnel")
MB = 1e6


def jget(kv, key):
    try:
        return json.loads(kv[key])
    except (KeyError, ValueError):
        return {}


def nums(kv, key):
    try:
        return [float(x) for x in kv[key].split(",")]
    except (KeyError, ValueError):
        return None


def variant(kv, v, hz):
    wrk = jget(kv, v + ".wrk")
    nc = jget(kv, v + ".newconn")
    speeds = nums(kv, v + ".stream.speeds")
    host_speeds = nums(kv, v + ".stream_hostcc.speeds")
    wrk_ticks = nums(kv, v + ".wrk.ticks")
    st_ticks = nums(kv, v + ".stream.ticks")
    st_bytes = nums(kv, v + ".stream.bytes")
    reqs = wrk.get("requests")
    proxied = v != "direct"
    cpu_wrk = wrk_ticks[0] / hz if proxied and wrk_ticks else None
    cpu_st = st_ticks[0] / hz if proxied and st_ticks else None
    return {
        "requests_per_s": wrk.get("rps"),
        "p50_us": wrk.get("p50_us"),
        "p99_us": wrk.get("p99_us"),
        "wrk_requests": reqs,
        "wrk_errors": wrk.get("errors"),
        "newconn_median_us": nc.get("median_us"),
        "newconn_p90_us": nc.get("p90_us"),
        "newconn_errors": nc.get("errors"),
        "stream_mbytes_per_s": statistics.median(speeds) / MB if speeds else None,
        "stream_runs_mbytes_per_s": [s / MB for s in speeds] if speeds else None,
        "stream_hostcc_mbytes_per_s": statistics.median(host_speeds) / MB if host_speeds else None,
        "stream_hostcc_runs_mbytes_per_s": [s / MB for s in host_speeds] if host_speeds else None,
        "cpu_s_per_10k_requests": div(cpu_wrk and cpu_wrk * 1e4, reqs),
        "cpu_s_per_gb": div(cpu_st and cpu_st * 1e9, st_bytes[0] if st_bytes else None),
        "cpu_us_per_request": div(cpu_wrk and cpu_wrk * 1e6, reqs),
    }


def best(fig, key, higher):
    vals = [(fig[p][key], p) for p in PEERS if fig[p][key] is not None]
    if not vals:
        return None, None
    return (max if higher else min)(vals)


def fmt(x, nd=1):
    if x is None:
        return "n/a"
    if isinstance(x, str):
        return x
    return "{:,.{nd}f}".format(x, nd=nd)


def main(results, json_out):
    kv = load(results)
    hz = float(kv.get("clk_tck", "100"))
    fig = {v: variant(kv, v, hz) for v in VARIANTS}
    z = fig["zmesh"]

    # Per-ztunnel figures.
    per_node = nums(kv, "zmesh.wrk.ticks_per_node")
    reqs = z["wrk_requests"]
    zt_us = [div(t / hz * 1e6, reqs) for t in per_node] if per_node else None
    start = nums(kv, "zmesh.rss_start_kb")
    idle = nums(kv, "zmesh.rss_idle_kb")
    held = nums(kv, "zmesh.rss_held")  # connections, rss node-1, rss node-2
    z["ztunnel_cpu_us_per_request"] = zt_us
    z["ztunnel_rss_start_mb"] = [k / 1024 for k in start] if start else None
    z["ztunnel_rss_idle_mb"] = [k / 1024 for k in idle] if idle else None
    z["ztunnel_rss_held_mb"] = [k / 1024 for k in held[1:]] if held else None
    z["held_connections"] = int(held[0]) if held else None

    cc = kv.get("tcp_congestion", "?")
    host_cc = kv.get("host.tcp_congestion", cc)
    rows = [  # label, key, higher is better, digits
        ("requests/s (wrk -c50)", "requests_per_s", True, 0),
        ("p50 latency (us)", "p50_us", False, 0),
        ("p99 latency (us)", "p99_us", False, 0),
        ("new-connection request (us, median)", "newconn_median_us", False, 0),
        ("single stream (MB/s, 100 MB)", "stream_mbytes_per_s", True, 0),
        ("  the same, host's %s" % host_cc, "stream_hostcc_mbytes_per_s", True, 0),
        ("proxy CPU s / 10k requests", "cpu_s_per_10k_requests", False, 3),
        ("proxy CPU s / GB", "cpu_s_per_gb", False, 2),
    ]
    ratios = {}
    print()
    print("ztunnel benchmark: client pod (node-1) -> server pod (node-2), %s cores, %s"
          % (kv.get("host.cores", "?"), kv.get("host.cpu", "?")))
    print("  direct: no proxy; zmesh: two ztunnels, HBONE; haproxy / stunnel: a TLS 1.3 mTLS pair;")
    print("  relay: the haproxy pair without TLS (a ceiling, not a peer)")
    print("  TCP congestion control: %s in every namespace (host default: %s); zmesh's HBONE "
          "connections: %s" % (cc, host_cc, kv.get("zmesh.hbone_cc") or "n/a"))
    if kv.get("zmesh.hbone_cc_hostcc"):
        print("  (in the host's-default round, zmesh's HBONE connections: %s)"
              % kv["zmesh.hbone_cc_hostcc"])
    head = "%-38s %10s %10s %10s %10s %10s %14s" % ("", *VARIANTS, "zmesh/best")
    print(head)
    print("-" * len(head))
    for label, key, higher, nd in rows:
        if all(fig[v][key] is None for v in VARIANTS) and key.endswith("hostcc_mbytes_per_s"):
            continue  # the host's default is the one the run used
        b, who = best(fig, key, higher)
        r = div(z[key], b)
        ratios[key] = {"best_peer": who, "ratio": r}
        cells = [fmt(fig[v][key], nd) for v in VARIANTS]
        rs = "n/a" if r is None else "%.2fx (%s)" % (r, who[0:2])
        print("%-38s %10s %10s %10s %10s %10s %14s" % (label, *cells, rs))
    print()
    stream_best, _ = best(fig, "stream_mbytes_per_s", True)
    relay = fig["relay"]["stream_mbytes_per_s"]
    if stream_best and relay:
        print("single stream: 1.5x the best peer is %.0f MB/s; the relay without TLS did %.0f MB/s "
              "(%.2fx the best peer), zmesh %.0f%% of it"
              % (1.5 * stream_best, relay, relay / stream_best,
                 100 * (z["stream_mbytes_per_s"] or 0) / relay))
    if zt_us:
        print("ztunnel CPU per request (us): node-1 %s, node-2 %s"
              % tuple(fmt(x, 1) for x in zt_us))
    if start:
        print("ztunnel RSS at start (MB): node-1 %.1f, node-2 %.1f" % tuple(k / 1024 for k in start))
    if idle:
        print("ztunnel RSS idle after the runs (MB): node-1 %.1f, node-2 %.1f"
              % tuple(k / 1024 for k in idle))
    if held:
        print("ztunnel RSS with %d open connections (MB): node-1 %.1f, node-2 %.1f"
              % (held[0], held[1] / 1024, held[2] / 1024))

    def ratio_target(name, key, op, limit):
        r = ratios.get(key, {}).get("ratio")
        ok = None if r is None else (r >= limit if op == ">=" else r <= limit)
        return name, "%s %.2fx" % (op, limit), None if r is None else "%.2fx" % r, ok

    zt_max = max(zt_us) if zt_us and None not in zt_us else None
    rss_max = max(held[1:]) / 1024 if held and held[0] > 0 else None
    targets = [
        ratio_target("requests/s vs best peer", "requests_per_s", ">=", 1.25),
        ratio_target("single-stream throughput vs best peer", "stream_mbytes_per_s", ">=", 1.5),
        ratio_target("  the same, host's %s" % host_cc, "stream_hostcc_mbytes_per_s", ">=", 1.5),
        ratio_target("CPU per request vs best peer", "cpu_s_per_10k_requests", "<=", 0.75),
        ratio_target("new-connection latency vs best peer", "newconn_median_us", "<=", 0.5),
        ("ztunnel CPU per request (busier node)", "<= 30 us",
         None if zt_max is None else "%.1f us" % zt_max,
         None if zt_max is None else zt_max <= 30),
        ("ztunnel RSS, %s open connections" % (int(held[0]) if held else "n/a"), "< 32 MB",
         None if rss_max is None else "%.1f MB" % rss_max,
         None if rss_max is None else rss_max < 32),
    ]
    print()
    print("targets (issue 4):")
    out_targets = []
    for name, want, got, ok in targets:
        if name.startswith("  the same") and host_cc == cc:
            continue
        verdict = "NOT MEASURED" if ok is None else ("MET" if ok else "NOT MET")
        print("  %-42s %-10s %-12s %s" % (name, want, got or "n/a", verdict))
        out_targets.append({"target": name, "want": want, "got": got, "met": ok})
    for v in VARIANTS:
        for what in ("wrk_errors", "newconn_errors"):
            if fig[v][what]:
                print("note: %s: %d %s (socket errors or non-2xx)" % (v, fig[v][what], what))
    for k in sorted(kv):
        if k.startswith("note."):
            print("note: " + kv[k])

    doc = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "complete": kv.get("complete") == "true",
        "host": {k[5:]: v for k, v in kv.items() if k.startswith("host.")},
        "wrk_seconds": float(kv.get("seconds", "0")),
        "variants": fig,
        "ratios_vs_best_peer": ratios,
        "targets": out_targets,
        "notes": [kv[k] for k in sorted(kv) if k.startswith("note.")],
    }
    with open(json_out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print("(figures in %s)" % json_out)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
