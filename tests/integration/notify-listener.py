#!/usr/bin/env python3
# Plays systemd's side of NOTIFY_SOCKET: binds a datagram socket at argv[1], then prints
# each message it receives (one per line, newlines inside a message shown as "|") until
# it sees STOPPING=1 or argv[2] seconds pass.
import socket
import sys
import time

path, timeout = sys.argv[1], float(sys.argv[2])
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
print("listening", flush=True)
deadline = time.time() + timeout
while time.time() < deadline:
    s.settimeout(max(0.01, deadline - time.time()))
    try:
        msg = s.recv(4096).decode()
    except socket.timeout:
        break
    print(msg.replace("\n", "|"), flush=True)
    if "STOPPING=1" in msg:
        break
