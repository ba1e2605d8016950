#!/usr/bin/env python3
"""A service written in Python (cohort_client.Service) hosted through a real
`cohort run` node: it registers with the node's discovery over CURVE with a
key the node trusts as a node, and is then called by a Python client, by a
C++ service (visits calls greeter.hello, which the Python service provides),
by `cohort call` and over HTTP; it calls a C++ service itself (counter.add),
its business errors keep their codes, and a service whose key the node does
not trust is never routed to. Usage: service_test.py PATH_TO_COHORT PATH_TO_PYTHON_PACKAGE_DIR"""
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, sys.argv[2])
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cohort_node import start_node, stop_node  # noqa: E402
from cohort_client import Client, CohortError, CurveKeys, Service  # noqa: E402

COHORT = sys.argv[1]


def check(cond, what):
    if not cond:
        print("FAIL:", what)
        sys.exit(1)


def eventually(cond, limit=15.0):
    until = time.time() + limit
    while time.time() < until:
        try:
            if cond():
                return True
        except CohortError:
            pass
        time.sleep(0.05)
    return cond()


def new_key(keys, name):
    check(subprocess.run([COHORT, "keys", "new", name, "--dir", keys], stdout=subprocess.DEVNULL).returncode == 0,
          "keys new " + name)
    return os.path.join(keys, name + ".key")


def public_of(key_file):
    return subprocess.run([COHORT, "keys", "show", key_file], capture_output=True, text=True).stdout.strip()


def main():
    with tempfile.TemporaryDirectory(prefix="cohort-pyservice-") as tmp:
        keys = os.path.join(tmp, "keys")
        py_key, tester_key, intruder_key = new_key(keys, "pyservice"), new_key(keys, "tester"), new_key(keys, "intruder")
        data = os.path.join(tmp, "data")
        cfg = os.path.join(tmp, "node.toml")
        with open(cfg, "w") as f:
            # Every port picked by the node, the admin endpoint's too (its default, 7401, is one per machine).
            f.write('[node]\nlisten = ["tcp://127.0.0.1:*"]\nadmin = "tcp://127.0.0.1:*"\ndata_dir = "%s"\n' % data)
            f.write('[http]\nlisten = "127.0.0.1:0"\n')  # the node picks a free port and says which
            f.write("[services.counter]\n[services.visits]\n")  # greeter: the Python service
            f.write('[security]\nkeyless_loopback = false\n')
            f.write('[[security.peer]]\nname = "pyservice"\nrole = "node"\nkey = "%s"\n' % public_of(py_key))
            f.write('[[security.peer]]\nname = "tester"\nrole = "client"\nkey = "%s"\nservices = ["*"]\n'
                    % public_of(tester_key))
        proc, endpoint = start_node(COHORT, cfg)
        http_port = proc.http_port
        node_pub = os.path.join(data, "keys", "node.key.pub")
        services = []
        try:
            svc = Service("greeter", endpoint, CurveKeys.from_files(node_pub, py_key))
            services.append(svc)

            @svc.method("hello")
            def hello(ctx, args):
                return {"greeting": "Hello from Python, %s!" % args["name"]}

            @svc.method("whoami")
            def whoami(ctx, args):
                return {"greeting": ctx.caller}

            @svc.method("count")
            def count(ctx, args):
                # A Python service calling a C++ entity service through the node.
                return ctx.call("counter", "add", {"n": args["n"]}, key=args["key"])

            @svc.method("fail")
            def fail(ctx, args):
                raise CohortError(args["code"], args["message"])

            intruder = Service("intruder", endpoint, CurveKeys.from_files(node_pub, intruder_key))
            services.append(intruder)

            @intruder.method("hello")
            def intruder_hello(ctx, args):
                return {"greeting": "should never be reached"}

            for s in services:
                threading.Thread(target=s.run, daemon=True).start()

            tester = CurveKeys.from_files(node_pub, tester_key)
            with Client(endpoint, curve=tester, timeout=5) as c:
                # Registered through discovery: the node routes to it.
                check(eventually(lambda: c.call("greeter", "hello", {"name": "py"}) ==
                                 {"greeting": "Hello from Python, py!"}), "Python client -> Python service")
                check(c.call("greeter", "whoami") == {"greeting": "tester"}, "the node passes on who called")
                # A C++ service calling the Python service.
                got = c.call("visits", "record", {"name": "ada"})
                check(got["greeting"] == "Hello from Python, ada!" and got["visits"] == 1, "visits (C++) -> greeter: %r" % got)
                # The Python service calling a C++ service.
                check(c.call("greeter", "count", {"key": "py-k", "n": 5})["value"] == 5, "greeter -> counter")
                check(c.call("counter", "get", key="py-k")["value"] == 5, "the count is stored")
                for args, code in [(("greeter", "fail", {"code": "out_of_stock", "message": "none"}), "out_of_stock"),
                                   (("greeter", "nosuch"), "unknown_method")]:
                    try:
                        c.call(*args)
                        check(False, "%r did not fail" % (args,))
                    except CohortError as e:
                        check(e.code == code, "%r: %s" % (args, e))
                # An untrusted key's heartbeats are ignored: its service is unknown to the node.
                time.sleep(4 * 0.5)  # several heartbeats of the intruder
                try:
                    c.call("intruder", "hello")
                    check(False, "a service with an untrusted key was routed to")
                except CohortError as e:
                    check(e.code == "unknown_service", "intruder: %s" % e)
                check(intruder.served == 0, "the intruder served nothing")
            # From C++: the `cohort call` command.
            out = subprocess.run([COHORT, "call", "greeter.hello", '{"name": "cli"}', "--endpoint", endpoint,
                                  "--client-key", tester_key, "--server-key", node_pub],
                                 capture_output=True, text=True)
            check(out.returncode == 0 and json.loads(out.stdout) == {"greeting": "Hello from Python, cli!"},
                  "cohort call: %r %r" % (out.stdout, out.stderr))
            # Over HTTP.
            h = http.client.HTTPConnection("127.0.0.1", http_port, timeout=10)
            h.request("POST", "/v1/greeter/hello", json.dumps({"name": "http"}), {"Content-Type": "application/json"})
            r = h.getresponse()
            body = json.loads(r.read())
            check(r.status == 200 and body == {"greeting": "Hello from Python, http!"}, "HTTP: %d %r" % (r.status, body))
            check(svc.served >= 6, "the Python service served the calls: %d" % svc.served)
        finally:
            for s in services:
                s.stop()
            stop_node(proc)
    print("ok")


if __name__ == "__main__":
    main()
