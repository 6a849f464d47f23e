#!/usr/bin/env python3
# Stands in for the agent on the control socket at argv[1] and answers every
# container.register with the JSON object in argv[2] (and anything else with {}): what a
# runtime does with a reply that lacks a field or carries a wrong one. Runs until killed.
import json
import os
import socket
import struct
import sys

path, reply = sys.argv[1], json.loads(sys.argv[2])
if os.path.exists(path):
    os.unlink(path)
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(path)
server.listen(8)
print("listening", flush=True)


def read_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


while True:
    conn, _ = server.accept()
    try:
        while True:
            size = struct.unpack(">I", read_exact(conn, 4))[0]
            request = json.loads(read_exact(conn, size))
            result = reply if request.get("method") == "container.register" else {}
            body = json.dumps({"jsonrpc": "2.0", "id": request.get("id"), "result": result}).encode()
            conn.sendall(struct.pack(">I", len(body)) + body)
    except (EOFError, ConnectionError):
        conn.close()
