#!/usr/bin/python3
"""report.py: turn run.sh's raw figures into the bench table and bench.json.

run.sh only measures and appends `key=value` lines to a results file; all
arithmetic (rates, ratios, CPU per unit of work) and formatting live here so
the shell stays about processes. A figure that could not be measured is
simply absent from the file: it prints as "n/a" and is null in the JSON, and
every ratio that needs it is null too.

Usage: report.py RESULTS_FILE JSON_OUT
"""

import json
import sys
import time

from results import load, num, div

AES_TARGET_GBPS = 3.0


def side_figures(kv, side):
    """Rates from raw counts (not the client's own rate field, to avoid unit mix-ups)."""
    tp_bytes, tp_secs = num(kv, side + ".tp.bytes"), num(kv, side + ".tp.seconds")
    st_n, st_secs = num(kv, side + ".st.streams"), num(kv, side + ".st.seconds")
    cpu_tp, cpu_st = num(kv, side + ".tp.cpu"), num(kv, side + ".st.cpu")
    return {
        "throughput_mbytes_per_s": div(tp_bytes, tp_secs and tp_secs * 1e6),
        "throughput_bytes": tp_bytes,
        "streams_per_s": div(st_n, st_secs),
        "streams": st_n,
        "server_cpu_s_throughput": cpu_tp,
        "server_cpu_s_per_gb": div(cpu_tp, tp_bytes and tp_bytes / 1e9),
        "server_cpu_s_streams": cpu_st,
        "server_cpu_us_per_stream": div(cpu_st and cpu_st * 1e6, st_n),
    }


def fmt(v, prec=2):
    return "n/a" if v is None else "%.*f" % (prec, v)


def main():
    kv = load(sys.argv[1])
    out_path = sys.argv[2]

    zm, ng = side_figures(kv, "zmesh"), side_figures(kv, "nghttpx")
    fwd = {
        "cpu_s_throughput": num(kv, "tinyproxy.tp.cpu"),
        "cpu_s_streams": num(kv, "tinyproxy.st.cpu"),
    }
    ratio = {k: div(zm[k], ng[k]) for k in zm if k not in ("throughput_bytes", "streams")}

    aead = {
        "wolfssl_version": kv.get("aead.wolfssl_version"),
        "wolfssl_aesni": kv.get("aead.wolfssl_aesni") == "true",
        "aesgcm_path": kv.get("aead.aesgcm_path"),
        "asm_linked": kv.get("aead.asm_linked"),
        "aes_128_gcm_gbps": num(kv, "aead.aes-128-gcm_gbps"),
        "aes_256_gcm_gbps": num(kv, "aead.aes-256-gcm_gbps"),
        "chacha20_poly1305_gbps": num(kv, "aead.chacha20-poly1305_gbps"),
        "record_engine": kv.get("aead.record_engine"),
        "record_aes_128_gcm_gbps": num(kv, "aead.record-aes-128-gcm_gbps"),
        "target_aes_128_gcm_gbps": AES_TARGET_GBPS,
    }

    # ---- the table -------------------------------------------------------
    print()
    print("== AEAD, one core, 16 KiB records ==")
    print(
        "wolfSSL %s, WOLFSSL_AESNI %s, AES-GCM path: %s, asm in binary: %s"
        % (aead["wolfssl_version"] or "?", "on" if aead["wolfssl_aesni"] else "off",
           aead["aesgcm_path"] or "?", aead["asm_linked"] or "?")
    )
    a128 = aead["aes_128_gcm_gbps"]
    verdict = "n/a" if a128 is None else ("ok" if a128 >= AES_TARGET_GBPS else "BELOW TARGET")
    print("  %-20s %8s GB/s   (target >= %.1f: %s)" % ("aes-128-gcm", fmt(a128), AES_TARGET_GBPS, verdict))
    print("  %-20s %8s GB/s" % ("aes-256-gcm", fmt(aead["aes_256_gcm_gbps"])))
    print("  %-20s %8s GB/s" % ("chacha20-poly1305", fmt(aead["chacha20_poly1305_gbps"])))
    print("  %-20s %8s GB/s   (the TLS record layer's AES-GCM: %s)"
          % ("record aes-128-gcm", fmt(aead["record_aes_128_gcm_gbps"]), aead["record_engine"] or "?"))

    secs, conc = kv.get("hbone.seconds", "?"), kv.get("hbone.concurrency", "?")
    print()
    print("== HBONE over loopback: zmesh vs nghttpx --http2-proxy (+ tinyproxy), %ss per run ==" % secs)
    rows = [
        ("single-stream MB/s", "throughput_mbytes_per_s", 1, "higher is better"),
        ("CONNECT streams/s (%s concurrent)" % conc, "streams_per_s", 0, "higher is better"),
        ("server CPU s (throughput run)", "server_cpu_s_throughput", 2, ""),
        ("server CPU s per GB moved", "server_cpu_s_per_gb", 2, "lower is better"),
        ("server CPU s (streams run)", "server_cpu_s_streams", 2, ""),
        ("server CPU us per stream", "server_cpu_us_per_stream", 1, "lower is better"),
    ]
    print("%-36s %10s %10s %7s" % ("metric", "zmesh", "nghttpx", "ratio"))
    for label, key, prec, note in rows:
        print("%-36s %10s %10s %7s  %s" % (label, fmt(zm[key], prec), fmt(ng[key], prec), fmt(ratio[key]), note))
    print("forward-proxy hop of nghttpx (tinyproxy), not in the figures above:")
    print("%-36s %10s %10s" % ("  CPU s (throughput run)", "-", fmt(fwd["cpu_s_throughput"])))
    print("%-36s %10s %10s" % ("  CPU s (streams run)", "-", fmt(fwd["cpu_s_streams"])))

    notes = [v for k, v in sorted(kv.items()) if k.startswith("note.")]
    for n in notes:
        print("note: " + n)

    doc = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": {k[5:]: v for k, v in kv.items() if k.startswith("host.")},
        "aead": aead,
        "hbone": {
            "seconds_per_run": num(kv, "hbone.seconds"),
            "streams_concurrency": num(kv, "hbone.concurrency"),
            "zmesh": zm,
            "nghttpx": ng,
            "nghttpx_forward_proxy_tinyproxy": fwd,
            "ratio_zmesh_over_nghttpx": ratio,
        },
        "complete": kv.get("complete") == "true",
        "notes": notes,
    }
    with open(out_path, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print("wrote " + out_path)


if __name__ == "__main__":
    main()
