#!/usr/bin/python3
"""ztunnel_client.py: the small clients of the ztunnel benchmark (ztunnel.sh).

Run inside a pod's network namespace (`ip netns exec`), so the addresses are
the pod's view. Every mode is bounded in time and never waits forever.

  newconn HOST PORT N   N sequential HTTP/1.1 GETs, each on a new TCP
                        connection (connect, request, read the whole
                        response by Content-Length, close). Prints one JSON
                        line: n, errors, median_us, p90_us, min_us.
  hold HOST PORT N SECS open N keep-alive connections and complete one GET on
                        each (so every hop of the path holds the connection),
                        print "ready N", then keep them idle until stdin
                        closes or SECS pass.
  wrk-parse             read wrk --latency output on stdin; print one JSON
                        line: requests, rps, p50_us, p99_us, errors.

The timing includes this interpreter's own per-request work; it is the same
for every variant, so differences between variants are the path's.
"""

import json
import re
import resource
import select
import socket
import sys
import time


def request(host):
    return ("GET / HTTP/1.1\r\nHost: %s\r\nUser-Agent: zm-ztbench\r\n\r\n" % host).encode()


def read_response(sock):
    """Read one response with a Content-Length body; raise on anything else."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the headers")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise ConnectionError("status: %r" % head[:40])
    m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
    if not m:
        raise ConnectionError("no Content-Length")
    want = int(m.group(1))
    while len(body) < want:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed mid-body")
        body += chunk


def newconn(host, port, n):
    req = request(host)
    times, errors = [], 0
    deadline = time.monotonic() + 60
    for _ in range(n):
        if time.monotonic() > deadline:
            break
        t0 = time.perf_counter_ns()
        try:
            with socket.create_connection((host, port), timeout=5) as s:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                s.sendall(req)
                read_response(s)
        except OSError:
            errors += 1
            continue
        times.append((time.perf_counter_ns() - t0) / 1000.0)
    times.sort()
    out = {"n": len(times), "errors": errors}
    if times:
        out.update(median_us=times[len(times) // 2], p90_us=times[int(len(times) * 0.9)],
                   min_us=times[0])
    print(json.dumps(out))
    return 0 if times else 1


def hold(host, port, n, secs):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 64), hard))
    req = request(host)
    socks = []
    deadline = time.monotonic() + 60
    try:
        for _ in range(n):
            if time.monotonic() > deadline:
                break
            s = socket.create_connection((host, port), timeout=5)
            socks.append(s)
            s.sendall(req)
            read_response(s)
    except OSError as e:
        print("hold: %d connections, then: %s" % (len(socks), e), file=sys.stderr)
    print("ready %d" % len(socks), flush=True)
    # Idle until the caller closes our stdin (or the bound passes).
    select.select([sys.stdin], [], [], secs)
    for s in socks:
        s.close()
    return 0 if len(socks) == n else 1


def to_us(val, unit):
    return float(val) * {"us": 1.0, "ms": 1e3, "s": 1e6}[unit]


def wrk_parse(text):
    out = {}
    m = re.search(r"Requests/sec:\s*([\d.]+)", text)
    if m:
        out["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in", text)
    if m:
        out["requests"] = int(m.group(1))
    for pct, key in (("50", "p50_us"), ("99", "p99_us")):
        m = re.search(r"^\s*%s%%\s+([\d.]+)(us|ms|s)\s*$" % pct, text, re.M)
        if m:
            out[key] = to_us(m.group(1), m.group(2))
    errs = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        errs += sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        errs += int(m.group(1))
    out["errors"] = errs
    print(json.dumps(out))
    return 0 if "rps" in out and "requests" in out else 1


def main(argv):
    if len(argv) >= 5 and argv[1] == "newconn":
        return newconn(argv[2], int(argv[3]), int(argv[4]))
    if len(argv) >= 6 and argv[1] == "hold":
        return hold(argv[2], int(argv[3]), int(argv[4]), float(argv[5]))
    if len(argv) == 2 and argv[1] == "wrk-parse":
        return wrk_parse(sys.stdin.read())
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
