#!/usr/bin/python3
"""h2_connect.py — an HBONE client that shares no code with zmesh.

Opens one HTTP/2 stream to a ztunnel's 15008 with Debian's python3-h2 over
Python's ssl (OpenSSL): TLS 1.3, ALPN h2, an optional client certificate,
the server verified against a CA bundle and its SPIFFE URI SAN compared
with --expect-id. Sends HEADERS (:method --method, :authority --authority;
CONNECT carries nothing else, as in RFC 9113 8.5), and on :status 200 writes
an HTTP/1.1 GET through the tunnel and reads the application's answer until
it contains --expect (or the stream ends).

Prints one JSON line and exits with a code the e2e test asserts on:
  0  tunnel up, the application answered and the answer holds --expect
  3  TLS refused: handshake, or the first read after it (TLS 1.3 servers
     check the client certificate after the client's handshake is done)
  4  stream refused with a non-200 :status (in "status")
  5  stream reset by the server (error code in "reset")
  6  tunnel up but the application's answer lacks --expect
  7  the server's identity is not --expect-id
  8  anything else (timeout, connection closed without an answer, ...)
  2  usage
Every wait is bounded by --timeout (seconds, whole run).
"""
import argparse
import json
import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions

EXIT_OK, EXIT_USAGE, EXIT_TLS, EXIT_STATUS, EXIT_RESET = 0, 2, 3, 4, 5
EXIT_APP, EXIT_IDENTITY, EXIT_OTHER = 6, 7, 8


def done(code, **kw):
    kw["exit"] = code
    print(json.dumps(kw, sort_keys=True), flush=True)
    sys.exit(code)


def spiffe_ids(peer):
    return [v for k, v in peer.get("subjectAltName", ()) if k == "URI"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, default=15008)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--expect-id", required=True)
    ap.add_argument("--authority", required=True)
    ap.add_argument("--method", default="CONNECT")
    ap.add_argument("--expect", default='"pod":"server"')
    ap.add_argument("--timeout", type=float, default=8.0)
    a = ap.parse_args()
    deadline = time.monotonic() + a.timeout

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False  # SPIFFE: the identity is the URI SAN, checked below
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(a.ca)
    ctx.set_alpn_protocols(["h2"])
    if a.cert:
        ctx.load_cert_chain(a.cert, a.key)

    try:
        raw = socket.create_connection((a.host, a.port), timeout=a.timeout)
    except OSError as e:
        done(EXIT_OTHER, error="connect: %s" % e)
    raw.settimeout(max(0.1, deadline - time.monotonic()))
    try:
        tls = ctx.wrap_socket(raw)
    except (ssl.SSLError, ConnectionError) as e:
        done(EXIT_TLS, error="handshake: %s" % e)
    except OSError as e:
        done(EXIT_OTHER, error="handshake: %s" % e)

    ids = spiffe_ids(tls.getpeercert())
    if ids != [a.expect_id]:
        done(EXIT_IDENTITY, error="server identity", ids=ids)
    if tls.selected_alpn_protocol() != "h2":
        done(EXIT_OTHER, error="alpn %r" % tls.selected_alpn_protocol())
    info = {"tls": tls.version(), "server_id": ids[0]}

    # CONNECT has only :method and :authority, which h2's outbound checks
    # (written for ordinary requests) would refuse: the server judges it.
    conn = h2.connection.H2Connection(
        config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                         validate_outbound_headers=False))
    conn.initiate_connection()
    sid = conn.get_next_available_stream_id()
    hdrs = [(":method", a.method), (":authority", a.authority)]
    if a.method != "CONNECT":
        hdrs += [(":scheme", "https"), (":path", "/h2probe")]
    conn.send_headers(sid, hdrs, end_stream=a.method != "CONNECT")

    status, body, first_read = None, b"", True
    request = b"GET /h2probe HTTP/1.1\r\nHost: x\r\n\r\n"

    def flush():
        out = conn.data_to_send()
        if out:
            tls.sendall(out)

    try:
        flush()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                done(EXIT_OTHER, error="timeout", status=status, body=body.decode("latin-1"), **info)
            tls.settimeout(left)
            try:
                data = tls.recv(65536)
            except (ssl.SSLError, ConnectionError) as e:
                if first_read:  # the server's verdict on our certificate
                    done(EXIT_TLS, error="first read: %s" % e, **info)
                raise
            if not data:
                done(EXIT_TLS if first_read else EXIT_OTHER, error="closed by server",
                     status=status, body=body.decode("latin-1"), **info)
            first_read = False
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                    status = int(dict(ev.headers)[":status"])
                    if status != 200:
                        done(EXIT_STATUS, status=status, **info)
                    conn.send_data(sid, request)
                elif isinstance(ev, h2.events.DataReceived) and ev.stream_id == sid:
                    body += ev.data
                    conn.acknowledge_received_data(ev.flow_controlled_length, sid)
                    if a.expect.encode() in body:
                        done(EXIT_OK, status=status, body=body.decode("latin-1"), **info)
                elif isinstance(ev, h2.events.StreamReset) and ev.stream_id == sid:
                    done(EXIT_RESET, reset=int(ev.error_code), status=status, **info)
                elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                    done(EXIT_APP, status=status, body=body.decode("latin-1"), **info)
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    done(EXIT_OTHER, error="GOAWAY %s" % ev.error_code, status=status, **info)
            flush()
    except (OSError, h2.exceptions.ProtocolError) as e:
        done(EXIT_OTHER, error=repr(e), status=status, **info)


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except Exception as e:  # pragma: no cover - reported, never a traceback exit 1
        done(EXIT_OTHER, error=repr(e))
