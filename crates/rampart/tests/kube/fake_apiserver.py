#!/usr/bin/env python3
"""A fake Kubernetes API server for Rampart's protocol-CONTRACT tests (not a cluster test).

It speaks what the Kubernetes front relies on, as the real API server does on the wire:
HTTPS (HTTP/1.1), discovery (/version, /api, /apis, /api/v1), pods list/get (as a Table when
the client asks for one, as kubectl does), one Secret, a watch that stays open, and exec over
WebSocket with the v5.channel.k8s.io / v4.channel.k8s.io framing (one channel byte per message:
0 stdin, 1 stdout, 2 stderr, 3 status, 4 resize, 255 close in v5). Containers are simulated:
`echo ARGS` prints its arguments; `sh` with a terminal echoes keys and runs `echo` lines; attach
joins the container's own process, such a `sh`.

It accepts only the service-account token given on the command line, and writes every request's
method, path and headers as one JSON line to the log file, so a test can assert impersonation
and that the user's own token never arrived.

Usage: fake_apiserver.py CERT KEY SA_TOKEN LOG_FILE SECRET_VALUE [prefer-v4]
Prints `READY PORT SHA256:FINGERPRINT` once listening on 127.0.0.1.
"""

import base64
import hashlib
import json
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.parse
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CERT, KEY, SA_TOKEN, LOG, SECRET_VALUE = sys.argv[1:6]
# `prefer-v4`: choose v4.channel.k8s.io when the client offers both (the v4 framing's test).
PREFERENCE = (("v4.channel.k8s.io", "v5.channel.k8s.io") if sys.argv[6:] == ["prefer-v4"]
              else ("v5.channel.k8s.io", "v4.channel.k8s.io"))
LOCK = threading.Lock()
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

POD = {
    "kind": "Pod",
    "apiVersion": "v1",
    "metadata": {"name": "web-0", "namespace": "default", "uid": "1", "resourceVersion": "1",
                 "creationTimestamp": "2026-11-30T00:00:00Z"},
    "spec": {"containers": [{"name": "app", "image": "busybox", "stdin": True, "tty": True}]},
    "status": {"phase": "Running", "containerStatuses": [
        {"name": "app", "ready": True, "restartCount": 0, "image": "busybox", "imageID": "",
         "state": {"running": {}}}]},
}


def log(entry):
    with LOCK:
        with open(LOG, "a") as f:
            f.write(json.dumps(entry) + "\n")


def discovery_resources():
    return {
        "kind": "APIResourceList", "groupVersion": "v1",
        "resources": [
            {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod",
             "verbs": ["get", "list", "watch", "create", "delete"], "shortNames": ["po"]},
            {"name": "pods/exec", "singularName": "", "namespaced": True, "kind": "PodExecOptions",
             "verbs": ["create", "get"]},
            {"name": "secrets", "singularName": "secret", "namespaced": True, "kind": "Secret",
             "verbs": ["get", "list", "create", "delete"]},
            {"name": "namespaces", "singularName": "namespace", "namespaced": False,
             "kind": "Namespace", "verbs": ["get", "list"], "shortNames": ["ns"]},
        ],
    }


def pod_table():
    return {
        "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": "1"},
        "columnDefinitions": [
            {"name": "Name", "type": "string", "format": "name", "description": "", "priority": 0},
            {"name": "Ready", "type": "string", "format": "", "description": "", "priority": 0},
            {"name": "Status", "type": "string", "format": "", "description": "", "priority": 0},
        ],
        "rows": [{"cells": ["web-0", "1/1", "Running"], "object": {
            "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": POD["metadata"]}}],
    }


def secret():
    return {"kind": "Secret", "apiVersion": "v1", "type": "Opaque",
            "metadata": {"name": "db", "namespace": "default", "resourceVersion": "1"},
            "data": {"password": base64.b64encode(SECRET_VALUE.encode()).decode()}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_json(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def status(self, code, reason, message):
        self.send_json(code, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                              "status": "Failure", "reason": reason, "message": message,
                              "code": code})

    def handle_any(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        log({"method": self.command, "path": url.path, "query": url.query,
             "headers": [[k, v] for k, v in self.headers.items()],
             "content_type": self.headers.get("Content-Type"),
             "body": body.decode(errors="replace")})
        # As the real API server (Go's net/http): an HTTP/1.1 request needs a Host.
        if not self.headers.get("Host"):
            return self.status(400, "BadRequest", "missing required Host header")
        if self.headers.get("Authorization") != "Bearer " + SA_TOKEN:
            return self.status(401, "Unauthorized", "Unauthorized")
        path = url.path
        if path == "/version":
            return self.send_json(200, {"major": "1", "minor": "32", "gitVersion": "v1.32.0-fake",
                                        "platform": "linux/amd64"})
        if path == "/api":
            return self.send_json(200, {"kind": "APIVersions", "versions": ["v1"],
                                        "serverAddressByClientCIDRs": [
                                            {"clientCIDR": "0.0.0.0/0",
                                             "serverAddress": "127.0.0.1:443"}]})
        if path == "/apis":
            return self.send_json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
        if path == "/api/v1":
            return self.send_json(200, discovery_resources())
        # The pods of `default`, or of every namespace (`kubectl get pods -A`: only default's).
        if path in ("/api/v1/namespaces/default/pods", "/api/v1/pods") and self.command == "GET":
            if query.get("watch") == ["true"] or query.get("watch") == ["1"]:
                return self.watch()
            if "as=Table" in (self.headers.get("Accept") or ""):
                return self.send_json(200, pod_table())
            return self.send_json(200, {"kind": "PodList", "apiVersion": "v1",
                                        "metadata": {"resourceVersion": "1"}, "items": [POD]})
        if path == "/api/v1/namespaces/default/pods/web-0" and self.command == "GET":
            return self.send_json(200, POD)
        if path == "/api/v1/namespaces/default/pods/web-0/exec":
            return self.exec(query)
        if path == "/api/v1/namespaces/default/pods/web-0/attach":
            return self.exec(query, attach=True)
        if path == "/api/v1/namespaces/default/pods/web-0/portforward":
            return self.portforward(query)
        if path == "/api/v1/namespaces/default/secrets/db" and self.command == "GET":
            return self.send_json(200, secret())
        if path == "/api/v1/namespaces/default/secrets" and self.command == "POST":
            try:
                obj = json.loads(body)
            except ValueError:
                obj = {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "app"}}
            obj.setdefault("metadata", {}).setdefault("namespace", "default")
            return self.send_json(201, obj)
        return self.status(404, "NotFound", "not found: " + path)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

    def watch(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        event = json.dumps({"type": "ADDED", "object": POD}).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
        self.wfile.flush()
        # Stay open until the client goes away (as a watch does), bounded.
        self.connection.settimeout(1)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if self.connection.recv(1) == b"":
                    return
            except socket.timeout:
                continue
            except OSError:
                return
        self.close_connection = True

    # --- exec over WebSocket -------------------------------------------------------------
    def exec(self, query, attach=False):
        """exec runs `command`; attach joins the container's own process, a shell."""
        if (self.headers.get("Upgrade") or "").lower() != "websocket":
            return self.status(400, "BadRequest", "upgrade to websocket required")
        offered = [p.strip() for p in (self.headers.get("Sec-WebSocket-Protocol") or "").split(",")]
        chosen = next((p for p in PREFERENCE if p in offered), None)
        if chosen is None:
            return self.status(400, "BadRequest", "no supported subprotocol")
        accept = base64.b64encode(hashlib.sha1(
            (self.headers["Sec-WebSocket-Key"] + WS_GUID).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.send_header("Sec-WebSocket-Protocol", chosen)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        command = ["sh"] if attach else query.get("command", [])
        tty = query.get("tty") == ["true"]
        ws = WebSocket(self.rfile, self.wfile)
        log({"attach" if attach else "exec": command, "tty": tty, "protocol": chosen})
        if command and command[0] == "echo":
            ws.send(1, (" ".join(command[1:]) + "\n").encode())
            ws.send(3, json.dumps({"metadata": {}, "status": "Success"}).encode())
            ws.close()
            return
        if command == ["sh"] and tty:
            return self.shell(ws)
        ws.send(2, b"unknown command\n")
        ws.send(3, json.dumps({"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
                               "details": {"causes": [{"reason": "ExitCode",
                                                       "message": "127"}]}}).encode())
        ws.close()

    # --- port-forward over WebSocket ----------------------------------------------------
    def upgrade(self, chosen):
        accept = base64.b64encode(hashlib.sha1(
            (self.headers["Sec-WebSocket-Key"] + WS_GUID).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.send_header("Sec-WebSocket-Protocol", chosen)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        return WebSocket(self.rfile, self.wfile)

    def portforward(self, query):
        """The pod's ports all run an echo server: what a connection sends comes back,
        prefixed `echo:` once per connection."""
        if (self.headers.get("Upgrade") or "").lower() != "websocket":
            return self.status(400, "BadRequest", "upgrade to websocket required")
        offered = [p.strip() for p in (self.headers.get("Sec-WebSocket-Protocol") or "").split(",")]
        if SPDY_TUNNEL in offered:
            return SpdyPortForward(self.upgrade(SPDY_TUNNEL)).serve()
        if "v4.channel.k8s.io" in offered:
            ports = [int(p) for value in query.get("ports", []) for p in value.split(",")]
            return self.channel_portforward(self.upgrade("v4.channel.k8s.io"), ports)
        return self.status(400, "BadRequest", "no supported subprotocol")

    def channel_portforward(self, ws, ports):
        """v4.channel.k8s.io port-forward (the Python client's): channel 2i is port i's data,
        2i+1 its errors; the first message on each channel is the port, 2 bytes little-endian."""
        log({"portforward": "v4.channel.k8s.io", "ports": ports})
        for index, port in enumerate(ports):
            ws.send(2 * index, struct.pack("<H", port))
            ws.send(2 * index + 1, struct.pack("<H", port))
        greeted = set()
        while True:
            message = ws.recv()
            if message is None:
                return
            channel, data = message
            if channel % 2 or channel // 2 >= len(ports):
                continue
            log({"forwarded": ports[channel // 2], "data": data.decode(errors="replace")})
            prefix = b"" if channel in greeted else b"echo:"
            greeted.add(channel)
            ws.send(channel, prefix + data)

    def shell(self, ws):
        # The prompt goes out once the client has spoken (kubectl -it sends the terminal's size
        # first), or after 3 s of silence: kubectl's WebSocket client drops what arrives before
        # it has set up its streams ("Unknown stream id 1, discarding message"), and a prompt
        # sent right after the upgrade was sometimes lost that way.
        prompted = threading.Lock()
        sent = []

        def prompt():
            with prompted:
                if not sent:
                    sent.append(True)
                    ws.send(1, b"$ ")

        timer = threading.Timer(3, prompt)
        timer.daemon = True
        timer.start()
        line = b""
        while True:
            message = ws.recv()
            if message is None:
                timer.cancel()
                return
            prompt()
            channel, data = message
            if channel == 4:
                log({"resize": json.loads(data)})
                continue
            if channel != 0:
                continue
            for byte in data:
                ch = bytes([byte])
                if ch in (b"\r", b"\n"):
                    ws.send(1, b"\r\n")
                    words = line.decode(errors="replace").split()
                    line = b""
                    if words and words[0] == "exit":
                        ws.send(3, json.dumps({"metadata": {}, "status": "Success"}).encode())
                        ws.close()
                        return
                    if words and words[0] == "echo":
                        ws.send(1, (" ".join(words[1:]) + "\r\n").encode())
                    ws.send(1, b"$ ")
                elif ch in (b"\x05", b"\x15"):
                    # Ctrl-E Ctrl-U (what Rampart sends for a refused line): clear the line.
                    if ch == b"\x15":
                        line = b""
                else:
                    line += ch
                    ws.send(1, ch)


# SPDY/3 header compression's dictionary (the draft-3 spec's): length-prefixed words, then text.
SPDY_WORDS = (
    "options head post put delete trace accept accept-charset accept-encoding accept-language "
    "accept-ranges age allow authorization cache-control connection content-base "
    "content-encoding content-language content-length content-location content-md5 "
    "content-range content-type date etag expect expires from host if-match if-modified-since "
    "if-none-match if-range if-unmodified-since last-modified location max-forwards pragma "
    "proxy-authenticate proxy-authorization range referer retry-after server te trailer "
    "transfer-encoding upgrade user-agent vary via warning www-authenticate method get status"
).split() + ["200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive",
             "origin"]
SPDY_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.")
SPDY_DICT = (b"".join(len(w).to_bytes(4, "big") + w.encode() for w in SPDY_WORDS)
             + SPDY_TAIL.encode())
SPDY_TUNNEL = "SPDY/3.1+portforward.k8s.io"


class SpdyPortForward:
    """kubectl's port-forward (KEP-4006): SPDY/3.1 frames carried as a byte stream in binary
    WebSocket messages. Each local connection is an error stream and a data stream
    (headers streamtype, port, requestid); the data stream echoes, FIN closes both."""

    def __init__(self, ws):
        self.ws = ws
        self.buf = b""
        self.inflate = zlib.decompressobj(zdict=SPDY_DICT)
        self.deflate = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY,
                                        SPDY_DICT)
        self.streams = {}
        self.greeted = set()

    def headers(self, block):
        data = self.inflate.decompress(block)
        count, = struct.unpack(">I", data[:4])
        pos, out = 4, {}
        for _ in range(count):
            n, = struct.unpack(">I", data[pos:pos + 4])
            name = data[pos + 4:pos + 4 + n].decode()
            pos += 4 + n
            n, = struct.unpack(">I", data[pos:pos + 4])
            out[name] = data[pos + 4:pos + 4 + n].decode()
            pos += 4 + n
        return out

    def control(self, kind, flags, body):
        self.ws.send_raw(struct.pack(">HHI", 0x8003, kind, (flags << 24) | len(body)) + body)

    def data(self, stream, flags, payload):
        self.ws.send_raw(struct.pack(">II", stream, (flags << 24) | len(payload)) + payload)

    def serve(self):
        log({"portforward": SPDY_TUNNEL})
        while True:
            message = self.ws.recv_raw()
            if message is None:
                return
            self.buf += message
            while len(self.buf) >= 8:
                first, flags_length = struct.unpack(">II", self.buf[:8])
                length = flags_length & 0xFFFFFF
                if len(self.buf) < 8 + length:
                    break
                body, self.buf = self.buf[8:8 + length], self.buf[8 + length:]
                flags = flags_length >> 24
                if first & 0x80000000:
                    self.on_control(first & 0xFFFF, flags, body)
                else:
                    self.on_data(first, flags, body)

    def on_control(self, kind, flags, body):
        if kind == 1:  # SYN_STREAM
            stream, = struct.unpack(">I", body[:4])
            headers = self.headers(body[10:])
            self.streams[stream & 0x7FFFFFFF] = headers
            log({"spdy_stream": headers})
            block = self.deflate.compress(struct.pack(">I", 0)) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
            self.control(2, 0, struct.pack(">I", stream & 0x7FFFFFFF) + block)  # SYN_REPLY
        elif kind == 6:  # PING
            self.control(6, 0, body)

    def on_data(self, stream, flags, payload):
        headers = self.streams.get(stream, {})
        if headers.get("streamtype") == "data" and payload:
            log({"forwarded": int(headers.get("port", "0")),
                 "data": payload.decode(errors="replace")})
            prefix = b"" if stream in self.greeted else b"echo:"
            self.greeted.add(stream)
            self.data(stream, 0, prefix + payload)
        if flags & 1 and headers.get("streamtype") == "data":
            self.data(stream, 1, b"")
            for other, h in self.streams.items():
                if h.get("requestid") == headers.get("requestid") and h.get("streamtype") == "error":
                    self.data(other, 1, b"")


class WebSocket:
    def __init__(self, rfile, wfile):
        self.rfile, self.wfile = rfile, wfile

    def send(self, channel, payload):
        data = bytes([channel]) + payload
        header = bytes([0x82])
        if len(data) < 126:
            header += bytes([len(data)])
        elif len(data) < 65536:
            header += bytes([126]) + struct.pack(">H", len(data))
        else:
            header += bytes([127]) + struct.pack(">Q", len(data))
        self.wfile.write(header + data)
        self.wfile.flush()

    def send_raw(self, payload):
        """One binary message of raw bytes (no channel byte)."""
        header = bytes([0x82])
        if len(payload) < 126:
            header += bytes([len(payload)])
        elif len(payload) < 65536:
            header += bytes([126]) + struct.pack(">H", len(payload))
        else:
            header += bytes([127]) + struct.pack(">Q", len(payload))
        self.wfile.write(header + payload)
        self.wfile.flush()

    def recv_raw(self):
        """The next binary message whole; None when the client closed."""
        while True:
            head = self.rfile.read(2)
            if len(head) < 2:
                return None
            opcode = head[0] & 0x0F
            masked = head[1] & 0x80
            length = head[1] & 0x7F
            if length == 126:
                length = struct.unpack(">H", self.rfile.read(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self.rfile.read(8))[0]
            mask = self.rfile.read(4) if masked else b"\0\0\0\0"
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(length)))
            if opcode == 0x8:
                return None
            if opcode in (0x0, 0x2):
                return data

    def close(self):
        try:
            self.wfile.write(bytes([0x88, 2]) + struct.pack(">H", 1000))
            self.wfile.flush()
        except OSError:
            pass

    def recv(self):
        """The next binary message as (channel, payload); None when the client closed."""
        while True:
            head = self.rfile.read(2)
            if len(head) < 2:
                return None
            opcode = head[0] & 0x0F
            masked = head[1] & 0x80
            length = head[1] & 0x7F
            if length == 126:
                length = struct.unpack(">H", self.rfile.read(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self.rfile.read(8))[0]
            mask = self.rfile.read(4) if masked else b"\0\0\0\0"
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(length)))
            if opcode == 0x8:
                return None
            if opcode == 0x2 and data:
                return data[0], data[1:]


def main():
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(CERT, KEY)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    with open(CERT) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    print("READY %d SHA256:%s" % (server.server_address[1], hashlib.sha256(der).hexdigest()),
          flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
