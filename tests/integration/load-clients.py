#!/usr/bin/env python3
# load-clients.py SOCKET AGENT_PID BUNDLE...: 200 clients each call "status" 20 times over
# their own connection while 50 subscribers listen and the bundles are pushed one by one.
# Exits non-zero on any error; prints the agent's memory.
import asyncio
import json
import os
import struct
import sys
import time

SOCKET, PID, BUNDLES = sys.argv[1], sys.argv[2], sys.argv[3:]
CLIENTS, CALLS, SUBSCRIBERS = 200, 20, 50


def memory_kib():
    fields = dict(l.split(":", 1) for l in open("/proc/%s/status" % PID))
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


async def call(reader, writer, ident, method, params=None):
    msg = {"jsonrpc": "2.0", "id": ident, "method": method}
    if params is not None:
        msg["params"] = params
    body = json.dumps(msg).encode()
    writer.write(struct.pack(">I", len(body)) + body)
    await writer.drain()
    while True:
        reply = await read_frame(reader)
        if reply.get("id") == ident:
            if "error" in reply:
                raise RuntimeError("%s: %s" % (method, reply["error"]))
            return reply["result"]


async def read_frame(reader):
    size = struct.unpack(">I", await reader.readexactly(4))[0]
    return json.loads(await reader.readexactly(size))


async def status_client(n):
    reader, writer = await asyncio.open_unix_connection(SOCKET)
    for i in range(CALLS):
        s = await call(reader, writer, i + 1, "status")
        assert s["agent"]["pid"] == int(PID)
    writer.close()


async def subscriber(ready, counts, n):
    reader, writer = await asyncio.open_unix_connection(SOCKET)
    await call(reader, writer, 1, "events.subscribe")
    ready.release()
    serials = []
    while len(serials) < len(BUNDLES):
        event = await read_frame(reader)
        if event.get("method") == "policy.applied":
            serials.append(event["params"]["serial"])
    counts[n] = serials
    writer.close()


async def main():
    ready = asyncio.Semaphore(0)
    counts = {}
    subs = [asyncio.create_task(subscriber(ready, counts, n)) for n in range(SUBSCRIBERS)]
    for _ in range(SUBSCRIBERS):
        await ready.acquire()
    rss0, _ = memory_kib()
    start = time.time()
    clients = [asyncio.create_task(status_client(n)) for n in range(CLIENTS)]
    reader, writer = await asyncio.open_unix_connection(SOCKET)
    for i, path in enumerate(BUNDLES):
        await call(reader, writer, i + 1, "settings.push", {"bundle": open(path).read()})
    await asyncio.gather(*clients)
    await asyncio.wait_for(asyncio.gather(*subs), 30)
    elapsed = time.time() - start
    rss1, hwm = memory_kib()
    expected = list(range(1, len(BUNDLES) + 1))
    bad = [n for n, s in counts.items() if s != expected]
    assert not bad, "subscribers %s saw %s" % (bad, [counts[n] for n in bad])
    print("%d status calls from %d clients and %d pushes seen by %d subscribers in %.2f s" %
          (CLIENTS * CALLS, CLIENTS, len(BUNDLES), SUBSCRIBERS, elapsed))
    print("agent memory: VmRSS %d KiB before, %d KiB after, peak %d KiB" % (rss0, rss1, hwm))
    # AddressSanitizer keeps up to 256 MiB of freed memory in quarantine (make check).
    limit = 512 if os.environ.get("STOCKADE_SANITIZED") else 64
    assert hwm < limit * 1024, "agent peak memory %d KiB is over %d MiB" % (hwm, limit)


asyncio.run(main())
