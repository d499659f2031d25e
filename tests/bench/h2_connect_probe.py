#!/usr/bin/python3
"""h2_connect_probe.py: an independent HBONE-style client, to prove a tunnel works.

It opens one mTLS connection (client certificate, server verified against the
CA, ALPN h2 required), sends an HTTP/2 CONNECT for --target, expects a 2xx,
pushes a payload through the tunnel and checks the same bytes come back. It
uses Python's ssl and the h2 package (Debian python3-h2), i.e. none of the
code under test, so run.sh uses it as a sanity check of each server (nghttpx
chain or zmesh) before measuring it: a benchmark of a broken tunnel measures
nothing.

The payload starts with '#', which is no mode letter of the bench target
(hbone_lab.h: 'D' discards, 'E' echoes after itself, ...), so the target
echoes every byte of it. It is larger than the
default 64 KiB windows, so flow control is exercised in both directions.

--self-echo starts an echo server on an ephemeral 127.0.0.1 port in-process
and uses it as the target; --serve-echo PORT only runs such a server (a
stand-in target when the zmesh bench binary is not built).

Exit status: 0 tunnel works, 1 it does not (reason on stderr), 2 usage.
Every socket operation has a timeout, and the whole probe a deadline.
"""

import argparse
import os
import socket
import ssl
import sys
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.settings


def parse_hostport(s):
    host, _, port = s.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError("expected HOST:PORT, got %r" % s)
    return host, int(port)


def echo_conn(conn):
    with conn:
        conn.settimeout(60)
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                conn.sendall(data)
        except OSError:
            return


def echo_serve(sock):
    """Accept forever (daemon thread or foreground), one thread per connection."""
    while True:
        try:
            conn, _ = sock.accept()
        except OSError:
            return
        threading.Thread(target=echo_conn, args=(conn,), daemon=True).start()


def echo_listen(port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    return sock


class ProbeError(Exception):
    pass


def tls_connect(args, deadline):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cafile=args.ca)
    ctx.load_cert_chain(certfile=args.cert, keyfile=args.key)
    # Mesh certificates name workloads by a SPIFFE URI SAN, not a DNS name:
    # the chain is still verified against the CA, only the name check is off.
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.set_alpn_protocols(["h2"])
    raw = socket.create_connection(args.connect, timeout=max(0.1, deadline - time.monotonic()))
    try:
        tls = ctx.wrap_socket(raw, server_hostname=None)
    except (ssl.SSLError, OSError) as e:
        raw.close()
        raise ProbeError("TLS handshake with %s:%d failed: %s" % (*args.connect, e))
    if tls.selected_alpn_protocol() != "h2":
        tls.close()
        raise ProbeError("server did not negotiate ALPN h2 (got %r)" % tls.selected_alpn_protocol())
    return tls


def probe(args):
    deadline = time.monotonic() + args.timeout
    tls = tls_connect(args, deadline)
    info = "%s %s" % (tls.version(), tls.cipher()[0])
    try:
        return info + ", " + tunnel(tls, args, deadline)
    finally:
        tls.close()


def tunnel(tls, args, deadline):
    # h2 4.1 insists on :scheme and :path in every request, which a classic
    # CONNECT (RFC 9113 8.5) must not carry: skip its outbound header checks.
    cfg = h2.config.H2Configuration(client_side=True, validate_outbound_headers=False)
    conn = h2.connection.H2Connection(cfg)
    conn.initiate_connection()
    # Large receive windows, like an HBONE client, so the echo never stalls.
    conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 4 << 20})
    conn.increment_flow_control_window(16 << 20)
    sid = conn.get_next_available_stream_id()
    authority = "%s:%d" % args.target
    conn.send_headers(sid, [(":method", "CONNECT"), (":authority", authority)])
    tls.sendall(conn.data_to_send())

    payload = b"#" + os.urandom(args.bytes - 1)
    sent, got, status = 0, bytearray(), None
    while len(got) < len(payload):
        left = deadline - time.monotonic()
        if left <= 0:
            raise ProbeError(
                "timeout: status %s, sent %d, echoed %d of %d bytes"
                % (status, sent, len(got), len(payload))
            )
        # Send only once the tunnel is up, as much as the peer's windows allow.
        if status is not None and sent < len(payload):
            room = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
            if room > 0:
                chunk = payload[sent : sent + room]
                conn.send_data(sid, chunk)
                sent += len(chunk)
        out = conn.data_to_send()
        if out:
            tls.sendall(out)
        tls.settimeout(min(left, 1.0))
        try:
            data = tls.recv(65536)
        except socket.timeout:
            continue
        if not data:
            raise ProbeError("server closed the connection (status %s, echoed %d)" % (status, len(got)))
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                status = dict(ev.headers).get(b":status", b"?").decode()
                if not status.startswith("2"):
                    raise ProbeError("CONNECT %s answered :status %s" % (authority, status))
            elif isinstance(ev, h2.events.DataReceived) and ev.stream_id == sid:
                got += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, sid)
            elif isinstance(ev, h2.events.StreamReset) and ev.stream_id == sid:
                raise ProbeError("stream reset by server, error code %s" % ev.error_code)
            elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                if len(got) < len(payload):
                    raise ProbeError("tunnel ended after %d of %d echoed bytes" % (len(got), len(payload)))
            elif isinstance(ev, h2.events.ConnectionTerminated):
                raise ProbeError("GOAWAY from server, error code %s" % ev.error_code)
    if bytes(got) != payload:
        raise ProbeError("echoed bytes differ from the payload")
    conn.end_stream(sid)
    conn.close_connection()
    tls.sendall(conn.data_to_send())
    return "CONNECT %s -> %s, %d bytes echoed intact" % (authority, status, len(got))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--connect", type=parse_hostport, help="server HOST:PORT (TLS, h2)")
    ap.add_argument("--ca", help="CA bundle that signed the server certificate")
    ap.add_argument("--cert", help="client certificate (PEM)")
    ap.add_argument("--key", help="client private key (PEM)")
    ap.add_argument("--target", type=parse_hostport, help="CONNECT target HOST:PORT (an echo server)")
    ap.add_argument("--self-echo", action="store_true", help="run an in-process echo target")
    ap.add_argument("--serve-echo", type=int, metavar="PORT", help="only run an echo server on 127.0.0.1:PORT")
    ap.add_argument("--bytes", type=int, default=200000, help="payload size (default 200000)")
    ap.add_argument("--timeout", type=float, default=10.0, help="deadline in seconds (default 10)")
    args = ap.parse_args()

    if args.serve_echo is not None:
        echo_serve(echo_listen(args.serve_echo))
        return 0

    if not (args.connect and args.ca and args.cert and args.key) or args.bytes < 1:
        ap.error("--connect, --ca, --cert and --key are required")
    if args.self_echo:
        sock = echo_listen(0)
        args.target = sock.getsockname()
        threading.Thread(target=echo_serve, args=(sock,), daemon=True).start()
    elif not args.target:
        ap.error("--target or --self-echo is required")

    try:
        print("probe ok: %s:%d: %s" % (*args.connect, probe(args)))
        return 0
    except (ProbeError, OSError, ssl.SSLError) as e:
        print("probe FAILED: %s:%d: %s" % (*args.connect, e), file=sys.stderr)
        return 1
    except Exception as e:  # an h2 protocol error is a failed probe too
        print("probe FAILED: %s:%d: %s: %s" % (*args.connect, type(e).__name__, e), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
