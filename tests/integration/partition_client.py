#!/usr/bin/env python3
"""A client written from docs/protocol.md that keeps its connection across a
network cut: one call before the cut, one sent into it (which times out here),
then it holds the socket open so TCP delivers the stalled request once the
link returns. Driven by the deadline partition test through stdin/stdout."""
import sys
import time

import msgpack
import zmq

endpoint = sys.argv[1]
ctx = zmq.Context()
sock = ctx.socket(zmq.DEALER)
sock.setsockopt(zmq.LINGER, 0)
sock.connect(endpoint)


def send(rid, method, args, budget_ms):
    header = {"v": 1, "kind": "request", "id": rid, "service": "counter", "method": method,
              "key": "partitioned", "deadline_ms": budget_ms, "sent_ms": int(time.time() * 1000)}
    sock.send_multipart([msgpack.packb(header), msgpack.packb(args)])


def wait_reply(timeout_ms):
    if not sock.poll(timeout_ms):
        return None
    head, body = sock.recv_multipart()
    return msgpack.unpackb(head), msgpack.unpackb(body)


send(1, "add", {"n": 1}, 5000)
reply = wait_reply(5000)
print("first:", "ok" if reply and reply[0]["kind"] == "reply" else "failed", flush=True)
sys.stdin.readline()                      # the test has cut the link
send(2, "add", {"n": 100}, 1000)
print("second:", "answered" if wait_reply(1500) else "timed out", flush=True)
sys.stdin.readline()                      # the link is back; keep the socket until told to go
reply = wait_reply(30000)
print("late reply:", reply[0]["kind"] if reply else "none", reply[1] if reply else "", flush=True)
sys.stdin.readline()
