#!/usr/bin/env python3
"""A client written from docs/protocol.md that calls counter.get on one key
every 100 ms for SECONDS seconds, each with a 400 ms deadline, and prints one
line per call: "ok <t>" or "err <code> <t>", t being CLOCK_MONOTONIC in ms
(the clock std::chrono::steady_clock reads on Linux). Replies that arrive
after their call was given up are ignored.

    probe_client.py ENDPOINT SECONDS
"""
import sys
import time

import msgpack
import zmq

endpoint, seconds = sys.argv[1], float(sys.argv[2])
ctx = zmq.Context()
sock = ctx.socket(zmq.DEALER)
sock.setsockopt(zmq.LINGER, 0)
sock.connect(endpoint)


def now_ms():
    return time.clock_gettime(time.CLOCK_MONOTONIC) * 1000.0


end = now_ms() + seconds * 1000
rid = 0
while now_ms() < end:
    rid += 1
    started = now_ms()
    header = {"v": 1, "kind": "request", "id": rid, "service": "counter", "method": "get",
              "key": "probe", "deadline_ms": 400, "sent_ms": int(time.time() * 1000)}
    sock.send_multipart([msgpack.packb(header), msgpack.packb(None)])
    outcome = "err timeout"
    while now_ms() - started < 400:
        if not sock.poll(max(1, int(400 - (now_ms() - started)))):
            break
        head, body = sock.recv_multipart()
        head = msgpack.unpackb(head)
        if head.get("id") != rid:
            continue  # a late reply to an earlier call
        if head.get("kind") == "reply":
            outcome = "ok"
        else:
            outcome = "err " + str(msgpack.unpackb(body).get("code", "?"))
        break
    print(f"{outcome} {now_ms():.0f}", flush=True)
    time.sleep(max(0.0, 0.1 - (now_ms() - started) / 1000))
