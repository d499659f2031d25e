#!/usr/bin/python3
"""tcp_load.py — raw TCP load through the mesh against zm-echo's raw echo.

  bulk HOST PORT BYTES     send BYTES of a seeded pattern, half-close, read the
                           echo to EOF; both directions' SHA-256 must match
  many HOST PORT N         N connections open at once, each echoes its own
                           greeting, then all close with a half-close
  half HOST PORT           half-close from the client: what was sent before
                           the FIN still comes back, then EOF

Prints one JSON line; exit 0 when everything matched, 1 otherwise.
zm-echo answers raw TCP when the first bytes do not look like HTTP.
"""
import hashlib
import json
import selectors
import socket
import sys
import time

CHUNK = 1 << 20


def pattern(n):
    block = hashlib.sha256(b"zmesh").digest() * (CHUNK // 32)
    while n > 0:
        yield block[: min(n, CHUNK)]
        n -= min(n, CHUNK)


def bulk(host, port, total):
    s = socket.create_connection((host, port), timeout=30)
    s.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
    sent_h, recv_h = hashlib.sha256(), hashlib.sha256()
    gen, pending, sent, got, eof = pattern(total), b"", 0, 0, False
    start, deadline = time.time(), time.time() + 120
    while not eof and time.time() < deadline:
        for key, ev in sel.select(timeout=1):
            if ev & selectors.EVENT_WRITE:
                if not pending:
                    pending = next(gen, b"")
                    if not pending:
                        s.shutdown(socket.SHUT_WR)
                        sel.modify(s, selectors.EVENT_READ)
                        continue
                    sent_h.update(pending)
                n = s.send(pending)
                sent += n
                pending = pending[n:]
            if ev & selectors.EVENT_READ:
                data = s.recv(CHUNK)
                if not data:
                    eof = True
                    break
                recv_h.update(data)
                got += len(data)
    secs = time.time() - start
    ok = eof and sent == total and got == total and sent_h.digest() == recv_h.digest()
    return ok, {"sent": sent, "received": got, "seconds": round(secs, 2),
                "mb_per_s_each_way": round(total / secs / 1e6, 1) if secs else 0}


def many(host, port, n):
    socks = []
    for i in range(n):
        s = socket.create_connection((host, port), timeout=30)
        s.sendall(b"#conn-%05d;" % i)
        socks.append(s)
    ok = 0
    for i, s in enumerate(socks):
        want = b"#conn-%05d;" % i
        got = b""
        while len(got) < len(want):
            d = s.recv(64)
            if not d:
                break
            got += d
        ok += got == want
    for s in socks:
        s.shutdown(socket.SHUT_WR)
    closed = sum(1 for s in socks if s.recv(1) == b"")
    for s in socks:
        s.close()
    return ok == n and closed == n, {"connections": n, "echoed": ok, "closed_cleanly": closed}


def half(host, port):
    s = socket.create_connection((host, port), timeout=10)
    msg = b"#before-fin" * 1000
    s.sendall(msg)
    s.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        got += d
    return got == msg, {"sent": len(msg), "received": len(got)}


def main():
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "bulk":
        ok, res = bulk(host, port, int(sys.argv[4]))
    elif mode == "many":
        ok, res = many(host, port, int(sys.argv[4]))
    else:
        ok, res = half(host, port)
    res.update(mode=mode, ok=ok)
    print(json.dumps(res))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
