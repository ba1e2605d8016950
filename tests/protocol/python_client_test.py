#!/usr/bin/env python3
"""A Cohort client written from docs/protocol.md alone (pyzmq + msgpack), run
against a real `cohort run` process. Usage: python_client_test.py PATH_TO_COHORT"""
import os
import signal
import subprocess
import sys
import tempfile
import time

import msgpack
import zmq


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def start_node(binary, tmp):
    cfg = os.path.join(tmp, "node.toml")
    with open(cfg, "w") as f:
        f.write('[node]\nlisten = ["tcp://127.0.0.1:*"]\nadmin = "tcp://127.0.0.1:*"\ndata_dir = "%s"\n'
                '[services.greeter]\n[services.counter]\n' % os.path.join(tmp, "data"))
    proc = subprocess.Popen([binary, "run", "--config", cfg], stdout=subprocess.PIPE, text=True)
    endpoint, deadline = None, time.time() + 10
    while time.time() < deadline:
        line = proc.stdout.readline()
        if "listening on " in line:
            endpoint = line.split("listening on ")[1].strip()
        if "ready" in line:
            return proc, endpoint
    proc.kill()
    fail("node did not start")


class Client:
    def __init__(self, ctx, endpoint):
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.next_id = 1

    def send(self, service, method, args=None, key=None, timeout_ms=3000):
        rid = self.next_id
        self.next_id += 1
        header = {"v": 1, "kind": "request", "id": rid, "service": service,
                  "method": method, "deadline_ms": timeout_ms}
        if key is not None:
            header["key"] = key
        self.sock.send_multipart([msgpack.packb(header), msgpack.packb(args)])
        return rid

    def receive(self, timeout_ms=3000):
        if not self.sock.poll(timeout_ms):
            fail("no reply within %d ms" % timeout_ms)
        frames = self.sock.recv_multipart()
        if len(frames) != 2:
            fail("a reply must have two frames, got %d" % len(frames))
        return msgpack.unpackb(frames[0]), msgpack.unpackb(frames[1])

    def call(self, service, method, args=None, key=None):
        rid = self.send(service, method, args, key)
        head, body = self.receive()
        if head["id"] != rid:
            fail("reply id %r does not match %r" % (head["id"], rid))
        return head, body


def main():
    binary = sys.argv[1]
    with tempfile.TemporaryDirectory(prefix="cohort-py-") as tmp:
        proc, endpoint = start_node(binary, tmp)
        try:
            ctx = zmq.Context()
            c = Client(ctx, endpoint)

            head, body = c.call("greeter", "hello", {"name": "Py"})
            if head["kind"] != "reply" or body != {"greeting": "Hello, Py!"}:
                fail("hello: %r %r" % (head, body))
            if not isinstance(head.get("trace"), str) or len(head["trace"]) == 0:
                fail("the node must assign a trace id")

            c.call("counter", "add", {"n": 2}, key="py-cart")
            head, body = c.call("counter", "get", None, key="py-cart")
            if body != {"key": "py-cart", "value": 2}:
                fail("counter: %r" % body)

            # Many in flight on one connection, matched by id.
            sent = {c.send("greeter", "echo", {"data": "m%d" % i}): "m%d" % i for i in range(50)}
            for _ in range(50):
                head, body = c.receive()
                if sent.pop(head["id"]) != body["data"]:
                    fail("mismatched pipelined reply")

            for service, method, args, code in [
                ("nosuch", "x", None, "unknown_service"),
                ("greeter", "nosuch", None, "unknown_method"),
                ("greeter", "hello", {"name": 5}, "bad_request"),
                ("counter", "add", {"n": 1}, "bad_request"),  # entity call without key
                ("greeter", "fail", {"code": "out_of_stock", "message": "none"}, "out_of_stock"),
            ]:
                head, body = c.call(service, method, args)
                if head["kind"] != "error" or body.get("code") != code or not body.get("message"):
                    fail("%s.%s: expected %s, got %r %r" % (service, method, code, head, body))

            # A header that is not a map: error with id 0.
            c.sock.send_multipart([msgpack.packb("not a map"), msgpack.packb(None)])
            head, body = c.receive()
            if head["id"] != 0 or body["code"] != "bad_request":
                fail("non-map header: %r %r" % (head, body))

            # Wrong version.
            c.sock.send_multipart([msgpack.packb({"v": 9, "kind": "request", "id": 77,
                                                  "service": "greeter", "method": "hello"}),
                                   msgpack.packb({"name": "x"})])
            head, body = c.receive()
            if head["id"] != 77 or body["code"] != "unsupported_version":
                fail("version: %r %r" % (head, body))

            # A deadline shorter than the work: timeout.
            rid = c.send("greeter", "sleep", {"ms": 400}, timeout_ms=50)
            head, body = c.receive()
            if head["id"] != rid or body["code"] != "timeout":
                fail("deadline: %r %r" % (head, body))

            # oneway: no reply at all.
            c.sock.send_multipart([msgpack.packb({"v": 1, "kind": "oneway", "id": 5,
                                                  "service": "greeter", "method": "hello"}),
                                   msgpack.packb({"name": "quiet"})])
            if c.sock.poll(300):
                fail("a oneway message must get no reply")

            # A REQ socket works too.
            req = ctx.socket(zmq.REQ)
            req.setsockopt(zmq.LINGER, 0)
            req.connect(endpoint)
            req.send_multipart([msgpack.packb({"v": 1, "kind": "request", "id": 1,
                                               "service": "greeter", "method": "hello"}),
                                msgpack.packb({"name": "REQ"})])
            if not req.poll(3000):
                fail("REQ got no reply")
            head, body = [msgpack.unpackb(f) for f in req.recv_multipart()]
            if body != {"greeting": "Hello, REQ!"}:
                fail("REQ: %r" % body)
            req.close()
            c.sock.close()
            ctx.term()
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                fail("node did not stop on SIGTERM")
        if code != 0:
            fail("node exited with %d" % code)
    print("1 passed, 0 failed")


if __name__ == "__main__":
    main()
