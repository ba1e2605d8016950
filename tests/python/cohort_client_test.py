#!/usr/bin/env python3
"""The Python client package (python/cohort_client) against real `cohort run`
processes: the shop's checkout, errors with their codes, a local timeout,
many calls in flight with asyncio, and CURVE with a key from `cohort keys new`
(refused without it). Usage: cohort_client_test.py PATH_TO_COHORT PATH_TO_PYTHON_PACKAGE_DIR"""
import asyncio
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, sys.argv[2])
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cohort_node import start_node as run_node, stop_node as stop  # noqa: E402
from cohort_client import AsyncClient, Client, CohortError, CurveKeys, Subscription  # noqa: E402

COHORT = sys.argv[1]
SHOP = ["catalog", "inventory", "cart", "orders", "payments", "notifications", "greeter", "counter"]


def check(cond, what):
    if not cond:
        print("FAIL:", what)
        sys.exit(1)


def start_node(tmp, name, extra=""):
    cfg = os.path.join(tmp, name + ".toml")
    with open(cfg, "w") as f:
        f.write('[node]\nname = "%s"\nlisten = ["tcp://127.0.0.1:*"]\nadmin = "tcp://127.0.0.1:*"\ndata_dir = "%s"\n'
                % (name, os.path.join(tmp, name + "-data")))
        f.write(extra)
        for s in SHOP:
            f.write("[services.%s]\n" % s)
        f.write("[services.orders.events]\nlog = true\n")  # clients may subscribe to orders' events
    return run_node(COHORT, cfg)


def main():
    with tempfile.TemporaryDirectory(prefix="cohort-pyclient-") as tmp:
        proc, endpoint = start_node(tmp, "plain")
        try:
            check(subprocess.run([COHORT, "seed-shop", "--endpoint", endpoint]).returncode == 0, "seed-shop")
            live = Subscription(endpoint, "orders", topics=["order_placed"])
            durable = Subscription(endpoint, "orders", topics=["order_placed"], name="py-billing")
            with Client(endpoint) as c:
                cart = c.call("cart", "add", {"sku": "mug-001", "qty": 2}, key="py-cart")
                check(cart["lines"][0]["qty"] == 2, "cart.add: %r" % cart)
                order = c.call("orders", "checkout", {"customer": "py", "cart_id": "py-cart", "card": "4242"},
                               key="py-order-1", idempotency_key="py-order-1", timeout=20)
                check(order["status"] == "completed", "checkout: %r" % order)
                check(c.call("orders", "get", key="py-order-1")["status"] == "completed", "orders.get")
                # Subscribers see the order placed: a live one and a durable one.
                for sub in (live, durable):
                    e = sub.get(timeout=10)
                    check(e is not None and e.topic == "order_placed" and e.data["order_id"] == "py-order-1"
                          and e.data["customer"] == "py" and e.seq > 0 and e.event_id, "order_placed: %r" % (e,))
                live.close()
                durable.get(timeout=0.2)  # acknowledges the first
                durable.close()
                # Published while the durable subscriber is away: it resumes there.
                c.call("cart", "add", {"sku": "mug-001", "qty": 1}, key="py-cart-2")
                c.call("orders", "checkout", {"customer": "py", "cart_id": "py-cart-2", "card": "4242"},
                       key="py-order-2", idempotency_key="py-order-2", timeout=20)
                with Subscription(endpoint, "orders", topics=["order_placed"], name="py-billing") as back:
                    e = back.get(timeout=10)
                    check(e is not None and e.data["order_id"] == "py-order-2", "durable resume: %r" % (e,))
                # Subscribing to a service that keeps no event log is refused with a code.
                try:
                    Subscription(endpoint, "cart")
                    check(False, "a subscription to cart (no event log) was accepted")
                except CohortError as e:
                    check(e.code == "unknown_method", "cart subscription: %s" % e)
                # Errors keep their stable codes.
                for args, code in [(("nosuch", "x"), "unknown_service"), (("greeter", "nosuch"), "unknown_method"),
                                   (("greeter", "fail", {"code": "out_of_stock", "message": "none"}), "out_of_stock")]:
                    try:
                        c.call(*args)
                        check(False, "%r did not fail" % (args,))
                    except CohortError as e:
                        check(e.code == code and e.message and not e.local, "%r: %s" % (args, e))
                # A deadline the service cannot meet: a local timeout, quickly.
                began = time.monotonic()
                try:
                    c.call("greeter", "sleep", {"ms": 2000}, timeout=0.2)
                    check(False, "sleep did not time out")
                except CohortError as e:
                    check(e.code == "timeout" and e.transient, "sleep: %s" % e)
                check(time.monotonic() - began < 1.5, "the timeout took too long")
                # The late reply of the timed-out call is not taken for the next one.
                check(c.call("greeter", "hello", {"name": "after"}) == {"greeting": "Hello, after!"}, "after timeout")

            async def many():
                async with AsyncClient(endpoint) as a:
                    results = await asyncio.gather(*[a.call("greeter", "echo", {"data": "m%d" % i}) for i in range(200)])
                    check([r["data"] for r in results] == ["m%d" % i for i in range(200)], "asyncio echo")
                    try:
                        await a.call("greeter", "sleep", {"ms": 2000}, timeout=0.2)
                        check(False, "async sleep did not time out")
                    except CohortError as e:
                        check(e.code == "timeout", "async timeout: %s" % e)
                    got = await a.call("counter", "add", {"n": 3}, key="py-async")
                    check(got["value"] == 3, "async counter: %r" % got)

            asyncio.run(many())
        finally:
            stop(proc)

        # CURVE: a node that takes no keyless clients, and a client key it trusts.
        keys = os.path.join(tmp, "keys")
        check(subprocess.run([COHORT, "keys", "new", "py", "--dir", keys]).returncode == 0, "keys new")
        public = CurveKeys.from_files(os.path.join(keys, "py.key.pub"), os.path.join(keys, "py.key")).public_key
        proc, endpoint = start_node(tmp, "secure", '[security]\nkeyless_loopback = false\n'
                                    '[[security.peer]]\nname = "py"\nrole = "client"\nkey = "%s"\nservices = ["*"]\n'
                                    % public)
        try:
            curve = CurveKeys.from_files(os.path.join(tmp, "secure-data", "keys", "node.key.pub"),
                                         os.path.join(keys, "py.key"))
            with Client(endpoint, curve=curve) as c:
                check(c.call("greeter", "whoami") == {"greeting": "py"}, "whoami over CURVE")
            with Client(endpoint, timeout=0.5) as c:
                try:
                    c.call("greeter", "hello", {"name": "no key"})
                    check(False, "a keyless client was served by a node that refuses them")
                except CohortError as e:
                    check(e.code == "timeout", "keyless: %s" % e)
        finally:
            stop(proc)
    print("ok")


if __name__ == "__main__":
    main()
