#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""HTTPS server for tests/unit/test-fetch.c.

Usage: https-server.py CERT KEY [SETTINGS_FILE]
Listens on 127.0.0.1 on a free port and prints that port on stdout. With SETTINGS_FILE,
/settings serves that file's current content with its SHA-256 as ETag (the agent's
integration test); otherwise a fixed document with ETag "v1".

  GET /settings      needs "Authorization: Bearer good-token" (else 401); sends ETag "v1"
                     and answers If-None-Match: "v1" with 304
  GET /big           2 MiB body with Content-Length
  GET /big-unsized   2 MiB body without Content-Length (ends with the connection)
  GET /slow          answers after 30 s
  HEAD /v2/tool/manifests/1.0  with the token and Accept naming the OCI index: a
                     Docker-Content-Digest; without the token 401 with a Bearer challenge
"""

import hashlib
import http.server
import ssl
import sys
import time

TOKEN = "good-token"
ETAG = '"v1"'
SETTINGS = b'{"configurationFileVersion": 2}\n'
BIG = b"x" * (2 << 20)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", headers=(), sized=True):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if not sized:
            self.send_header("Connection", "close")
            self.close_connection = True
        elif status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self):
        if self.path != "/v2/tool/manifests/1.0":
            self.reply(404)
        elif self.headers.get("Authorization") != "Bearer " + TOKEN:
            self.reply(401, headers=[("WWW-Authenticate", 'Bearer realm="https://127.0.0.1/token",service="test"')])
        elif "application/vnd.oci.image.index.v1+json" not in self.headers.get("Accept", ""):
            self.reply(406)
        else:
            self.reply(200, headers=[("Docker-Content-Digest", "sha256:" + "0123456789abcdef" * 4)])

    def do_GET(self):
        if self.path == "/slow":
            time.sleep(30)
            self.reply(200, b"late\n")
        elif self.path == "/big":
            self.reply(200, BIG)
        elif self.path == "/big-unsized":
            self.reply(200, BIG, sized=False)
        elif self.path != "/settings":
            self.reply(404)
        elif self.headers.get("Authorization") != "Bearer " + TOKEN:
            self.reply(401, b"bad token\n")
        else:
            body, etag = current_settings()
            if self.headers.get("If-None-Match") == etag:
                self.reply(304, headers=[("ETag", etag)])
            else:
                self.reply(200, body, [("ETag", etag), ("Content-Type", "application/json")])


def current_settings():
    if len(sys.argv) < 4:
        return SETTINGS, ETAG
    with open(sys.argv[3], "rb") as f:
        body = f.read()
    return body, '"%s"' % hashlib.sha256(body).hexdigest()


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # clients that hang up early (size limit, timeout) are expected


def main():
    cert, key = sys.argv[1:3]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = Server(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
