#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A registry of the test's own: enough of the registry API v2 for `docker push` and for the
agent's tag lookups, over HTTPS with the test's certificate, with token auth.

Usage: registry-stub.py CERT KEY
Listens on 127.0.0.1 on a free port and prints that port on stdout.

  GET /token?service=&scope=          {"token": ...}: the only token /v2/ accepts
  /v2/...                             401 with a Bearer challenge without that token
  HEAD|GET /v2/<name>/manifests/<ref> the manifest pushed under that tag or digest, with
                                      Docker-Content-Digest
  PUT /v2/<name>/manifests/<ref>      stores a manifest
  HEAD /v2/<name>/blobs/<digest>, POST/PATCH/PUT /v2/<name>/blobs/uploads/...: blob upload
"""

import hashlib
import http.server
import json
import re
import ssl
import sys
import threading
import uuid

TOKEN = "stub-token"
blobs, manifests, uploads = {}, {}, {}
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def authorized(self):
        if self.headers.get("Authorization") == "Bearer " + TOKEN:
            return True
        host = self.headers.get("Host")
        m = re.match(r"^/v2/(.+?)/(manifests|blobs)/", self.path)
        scope = 'scope="repository:%s:pull,push",' % m.group(1) if m else ""
        self.reply(401, b'{"errors": [{"code": "UNAUTHORIZED"}]}',
                   [("WWW-Authenticate", 'Bearer realm="https://%s/token",%sservice="stub"' % (host, scope)),
                    ("Content-Type", "application/json")])
        return False

    def route(self):
        if self.path.startswith("/token"):
            return self.reply(200, json.dumps({"token": TOKEN, "access_token": TOKEN}).encode(),
                              [("Content-Type", "application/json")])
        if not self.path.startswith("/v2/"):
            return self.reply(404)
        data = self.body() if self.command in ("PUT", "PATCH", "POST") else b""
        if not self.authorized():
            return
        if self.path == "/v2/":
            return self.reply(200, b"{}", [("Docker-Distribution-API-Version", "registry/2.0")])
        path, _, query = self.path.partition("?")
        m = re.match(r"^/v2/(.+)/manifests/([^/]+)$", path)
        if m:
            name, ref = m.groups()
            with lock:
                if self.command == "PUT":
                    digest = "sha256:" + hashlib.sha256(data).hexdigest()
                    entry = (digest, data, self.headers.get("Content-Type"))
                    manifests[(name, ref)] = manifests[(name, digest)] = entry
                    return self.reply(201, b"", [("Docker-Content-Digest", digest),
                                                 ("Location", "/v2/%s/manifests/%s" % (name, digest))])
                entry = manifests.get((name, ref))
            if not entry:
                return self.reply(404, b'{"errors": [{"code": "MANIFEST_UNKNOWN"}]}')
            return self.reply(200, entry[1], [("Docker-Content-Digest", entry[0]), ("Content-Type", entry[2])])
        m = re.match(r"^/v2/(.+)/blobs/(sha256:[0-9a-f]{64})$", path)
        if m:
            blob = blobs.get(m.group(2))
            if blob is None:
                return self.reply(404)
            return self.reply(200, blob, [("Docker-Content-Digest", m.group(2))])
        m = re.match(r"^/v2/(.+)/blobs/uploads/([^/]*)$", path)
        if m:
            name, upload = m.groups()
            if self.command == "POST":
                upload = str(uuid.uuid4())
                uploads[upload] = b""
            uploads[upload] = uploads.get(upload, b"") + data
            location = "/v2/%s/blobs/uploads/%s" % (name, upload)
            if self.command == "PUT":
                digest = re.search(r"digest=([^&]+)", query).group(1).replace("%3A", ":")
                blobs[digest] = uploads.pop(upload)
                return self.reply(201, b"", [("Docker-Content-Digest", digest),
                                             ("Location", "/v2/%s/blobs/%s" % (name, digest))])
            return self.reply(202, b"", [("Location", location), ("Docker-Upload-UUID", upload),
                                         ("Range", "0-%d" % max(len(uploads[upload]) - 1, 0))])
        return self.reply(404)

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = route


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # clients that hang up (the engine's HTTPS probes) are expected


def main():
    server = Server(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[1], sys.argv[2])
    # The handshake happens in each connection's thread: a slow client holds up no other.
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
