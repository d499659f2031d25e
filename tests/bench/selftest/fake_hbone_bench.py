#!/usr/bin/python3
"""fake_hbone_bench.py: a slow Python stand-in for zm-hbone-bench, for selftest.sh only.

It implements the zm-hbone-bench command line that run.sh relies on, so the
benchmark's plumbing (ports, certificates, process groups, CPU accounting,
JSON parsing, report) can be checked before the real C client exists. Its
figures measure Python, not any server: never compare them.

  --mkcerts DIR          ca.pem, server.{pem,key}, client.{pem,key} (openssl)
  --serve-target H:P     target: discards a connection whose first byte is 'D',
                         echoes and closes one starting with 'C', echoes any other
  --connect H:P --cert C --key K --ca CA --target H:P --mode throughput|streams
        --seconds S [--concurrency N]   one JSON line on stdout
"""

import argparse
import asyncio
import json
import os
import select
import socket
import ssl
import subprocess
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.settings


def hostport(s):
    host, _, port = s.rpartition(":")
    return host, int(port)


def mkcerts(d):
    os.makedirs(d, exist_ok=True)

    def run(*args):
        subprocess.run(args, check=True, cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    run("openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key")
    run("openssl", "req", "-x509", "-new", "-key", "ca.key", "-days", "2", "-subj", "/CN=fake-ca",
        "-addext", "basicConstraints=critical,CA:TRUE", "-out", "ca.pem")
    for who in ("server", "client"):
        run("openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", who + ".key")
        run("openssl", "req", "-new", "-key", who + ".key", "-subj", "/CN=" + who, "-out", who + ".csr")
        with open(os.path.join(d, who + ".ext"), "w") as f:
            f.write("subjectAltName=URI:spiffe://cluster.local/ns/bench/sa/%s\n" % who)
        run("openssl", "x509", "-req", "-in", who + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", who + ".ext", "-out", who + ".pem")


async def target_conn(reader, writer):
    first = await reader.read(65536)
    discard = first[:1] == b"D"
    data = first
    if first[:1] == b"C":  # one request, one answer: echo and close
        writer.write(first)
        await writer.drain()
        data = b""
    while data:
        if not discard:
            writer.write(data)
            await writer.drain()
        data = await reader.read(65536)
    writer.close()


def serve_target(hp):
    async def serve():
        server = await asyncio.start_server(target_conn, hp[0], hp[1])
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


class Client:
    def __init__(self, args):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(args.ca)
        ctx.load_cert_chain(args.cert, args.key)
        ctx.check_hostname = False
        ctx.set_alpn_protocols(["h2"])
        self.sock = ctx.wrap_socket(socket.create_connection(args.connect, timeout=10))
        if self.sock.selected_alpn_protocol() != "h2":
            raise SystemExit("no ALPN h2")
        self.sock.setblocking(False)
        cfg = h2.config.H2Configuration(client_side=True, validate_outbound_headers=False)
        self.h2 = h2.connection.H2Connection(cfg)
        self.h2.initiate_connection()
        self.h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 4 << 20})
        self.h2.increment_flow_control_window(16 << 20)
        self.authority = "%s:%d" % args.target
        self.out = b""

    def connect(self):
        sid = self.h2.get_next_available_stream_id()
        self.h2.send_headers(sid, [(":method", "CONNECT"), (":authority", self.authority)])
        return sid

    def pump(self, timeout):
        """Flush what h2 has queued, wait for input up to timeout, return events."""
        self.out += self.h2.data_to_send()
        want_w = [self.sock] if self.out else []
        r, w, _ = select.select([self.sock], want_w, [], timeout)
        if w:
            try:
                n = self.sock.send(self.out)
                self.out = self.out[n:]
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                pass
        events = []
        if r or self.sock.pending():
            try:
                data = self.sock.recv(1 << 20)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return events
            if not data:
                raise SystemExit("server closed the connection")
            events = self.h2.receive_data(data)
        for ev in events:
            if isinstance(ev, h2.events.ConnectionTerminated):
                raise SystemExit("GOAWAY, error code %s" % ev.error_code)
        return events


def throughput(c, seconds):
    sid, up, sent = c.connect(), False, 0
    block = b"D" * 16384
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if up and len(c.out) < (1 << 20):
            room = min(c.h2.local_flow_control_window(sid), c.h2.max_outbound_frame_size)
            if room > 0:
                c.h2.send_data(sid, block[:room])
                sent += room
        for ev in c.pump(0 if up and c.h2.local_flow_control_window(sid) > 0 else 0.05):
            if isinstance(ev, h2.events.ResponseReceived):
                up = True
            elif isinstance(ev, h2.events.StreamReset):
                raise SystemExit("stream reset")
    secs = time.monotonic() - start
    return {"mode": "throughput", "bytes": sent, "seconds": round(secs, 3),
            "mbps": round(sent / secs / 1e6, 3)}


def streams(c, seconds, concurrency):
    """Each stream: CONNECT, 'C' + END_STREAM, the echo, the server's END_STREAM.

    The target closes after echoing a 'C' connection, and that close ends the
    stream. The client never resets a stream: nghttp2's rapid-reset guard
    (Debian 1.52.0-1+deb12u1 on: 1000 RST_STREAM burst, 33/s) answers
    ~1000 client resets with GOAWAY, and nghttpx does not end a CONNECT
    tunnel on the client's END_STREAM alone (its HTTP/1 hop has no half-close).
    """
    active, done = set(), 0
    start = time.monotonic()
    while time.monotonic() - start < seconds or active:
        if time.monotonic() - start > seconds + 5:
            break
        while time.monotonic() - start < seconds and len(active) < concurrency:
            active.add(c.connect())
        for ev in c.pump(0.05):
            sid = getattr(ev, "stream_id", None)
            if isinstance(ev, h2.events.ResponseReceived):
                c.h2.send_data(sid, b"C", end_stream=True)
            elif isinstance(ev, h2.events.DataReceived):
                c.h2.acknowledge_received_data(ev.flow_controlled_length, sid)
                if ev.data and sid in active:
                    done += 1
            elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                active.discard(sid)
    secs = time.monotonic() - start
    return {"mode": "streams", "streams": done, "seconds": round(secs, 3),
            "per_sec": round(done / secs, 1)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mkcerts")
    ap.add_argument("--serve-target", type=hostport)
    ap.add_argument("--connect", type=hostport)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--ca")
    ap.add_argument("--target", type=hostport)
    ap.add_argument("--mode", choices=["throughput", "streams"])
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    if args.mkcerts:
        mkcerts(args.mkcerts)
    elif args.serve_target:
        serve_target(args.serve_target)
    else:
        c = Client(args)
        if args.mode == "throughput":
            res = throughput(c, args.seconds)
        else:
            res = streams(c, args.seconds, args.concurrency)
        print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
