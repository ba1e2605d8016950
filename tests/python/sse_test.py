#!/usr/bin/env python3
"""Server-Sent Events at the HTTP front against a real `cohort run` hosting
the shop: GET /v1/orders/events streams order_placed as checkouts complete
(over HTTP too), a reconnect with Last-Event-ID resumes after the last event
it got, a durable name resumes where it was acknowledged, topic filters,
and bad requests get JSON errors with codes; in process and with orders in
a service process of its own (the node relays its events). Usage: sse_test.py PATH_TO_COHORT"""
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cohort_node import start_node as run_node, stop_node  # noqa: E402

COHORT = sys.argv[1]
SHOP = ["catalog", "inventory", "cart", "orders", "payments", "notifications"]


def check(cond, what):
    if not cond:
        print("FAIL:", what)
        sys.exit(1)


def start_node(tmp, isolation):
    cfg = os.path.join(tmp, "node.toml")
    with open(cfg, "w") as f:
        # Port 0 / "*": the node binds free ports and says which (no race with another test for a port picked
        # here). The admin endpoint too: its default, 7401, is one port for every node on the machine.
        f.write('[node]\nlisten = ["tcp://127.0.0.1:*"]\nadmin = "tcp://127.0.0.1:*"\ndata_dir = "%s"\nisolation = "%s"\n'
                '[http]\nlisten = "127.0.0.1:0"\n'
                % (os.path.join(tmp, "data"), isolation))
        for s in SHOP:
            f.write("[services.%s]\n" % s)
        f.write("[services.orders.events]\nlog = true\n")
    proc, endpoint = run_node(COHORT, cfg)
    return proc, endpoint, proc.http_port


def post(port, path, body, key=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["X-Cohort-Key"] = key
    c.request("POST", path, json.dumps(body), headers)
    r = c.getresponse()
    data = json.loads(r.read())
    c.close()
    check(r.status == 200, "POST %s: %d %r" % (path, r.status, data))
    return data


def checkout(port, n):
    post(port, "/v1/cart/add", {"sku": "mug-001", "qty": 1}, key="sse-cart-%d" % n)
    order = post(port, "/v1/orders/checkout", {"customer": "sse", "cart_id": "sse-cart-%d" % n, "card": "4242"},
                 key="sse-order-%d" % n)
    check(order["status"] == "completed", "checkout %d: %r" % (n, order))


def subscriptions(port):
    """How many subscriptions orders serves now (its health document says)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/health/orders")
    body = json.loads(c.getresponse().read())
    c.close()
    return body["subscriptions"]


def eventually(cond, limit=10.0):
    until = time.time() + limit
    while time.time() < until:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


class Stream:
    """One GET /v1/<service>/events connection, read event by event."""

    def __init__(self, port, query="", headers=None):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.conn.request("GET", "/v1/orders/events" + query, headers=headers or {})
        self.resp = self.conn.getresponse()

    def next_event(self):
        """(id, event, data) of the next event; comments (pings) are skipped."""
        fields = {}
        while True:
            line = self.resp.fp.readline().decode()
            check(line != "", "the stream ended")
            line = line.rstrip("\n")
            if line == "":
                if "event" in fields:
                    return int(fields.get("id", 0)), fields["event"], json.loads(fields["data"])
                fields = {}
            elif not line.startswith(":"):
                k, _, v = line.partition(": ")
                fields[k] = v

    def close(self):
        self.resp.close()  # the response holds the socket open otherwise
        self.conn.close()


def main():
    # In process, and with each service in a process of its own (the node relays the child's events).
    for isolation in ["none", "process"]:
        run(isolation)
    print("ok")


def run(isolation):
    with tempfile.TemporaryDirectory(prefix="cohort-sse-") as tmp:
        proc, endpoint, port = start_node(tmp, isolation)
        try:
            check(subprocess.run([COHORT, "seed-shop", "--endpoint", endpoint]).returncode == 0, "seed-shop")
            s = Stream(port, "?topics=order_placed")
            check(s.resp.status == 200 and s.resp.getheader("Content-Type") == "text/event-stream",
                  "stream: %d %s" % (s.resp.status, s.resp.getheader("Content-Type")))
            durable = Stream(port, "?topics=order_placed&name=sse-billing")
            checkout(port, 1)
            first = s.next_event()
            check(first[1] == "order_placed" and first[2]["order_id"] == "sse-order-1" and first[0] > 0,
                  "first event: %r" % (first,))
            check(durable.next_event()[2]["order_id"] == "sse-order-1", "durable first event")
            check(eventually(lambda: subscriptions(port) == 2), "two subscriptions served")
            s.close()
            durable.close()
            # The front notices a client that went away at once and ends its subscription.
            check(eventually(lambda: subscriptions(port) == 0), "subscriptions ended when their clients left")
            checkout(port, 2)  # while both are away
            checkout(port, 3)
            # EventSource's reconnect: Last-Event-ID resumes after the last event it got.
            again = Stream(port, "?topics=order_placed", {"Last-Event-ID": str(first[0])})
            got = [again.next_event()[2]["order_id"] for _ in range(2)]
            check(got == ["sse-order-2", "sse-order-3"], "resumed after Last-Event-ID: %r" % got)
            again.close()
            back = Stream(port, "?topics=order_placed&name=sse-billing")
            check(back.next_event()[2]["order_id"] == "sse-order-2", "durable resumed after its acknowledged event")
            back.close()
            # Errors are JSON with a stable code, as for calls.
            for path, status, code in [("/v1/cart/events", 404, "unknown_method"),
                                       ("/v1/orders/events?window=0", 400, "bad_request"),
                                       ("/v1/orders/events?from=x", 400, "bad_request")]:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                c.request("GET", path)
                r = c.getresponse()
                body = json.loads(r.read())
                check(r.status == status and body["error"]["code"] == code, "%s: %d %r" % (path, r.status, body))
                c.close()
        finally:
            stop_node(proc)


if __name__ == "__main__":
    main()
