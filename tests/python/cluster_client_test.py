"""cohort_client.ClusterClient against a real two-node cluster (a real etcd
on loopback, two `cohort run` members with keys that trust each other): keyed calls go
to their key's owner, a wrong_shard answer is followed once, owners are
remembered, and what it remembers is what the nodes say.

Usage: cluster_client_test.py COHORT_BINARY PYTHON_PACKAGE_DIR"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, sys.argv[2])
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cohort_client import Client, ClusterClient, CohortError, CurveKeys, shard_of_key  # noqa: E402
from cohort_node import start_node, stop_node  # noqa: E402

SHARDS = 8


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def eventually(check, limit_s, what):
    deadline = time.time() + limit_s
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("not within %.0f s: %s" % (limit_s, what))


def etcd_healthy(url):
    try:
        with urllib.request.urlopen(url + "/health", timeout=1) as r:
            return json.loads(r.read()).get("health") == "true"
    except OSError:
        return False


def main():
    cohort = sys.argv[1]
    work = tempfile.mkdtemp(prefix="cohort-pycluster-")
    etcd_url = "http://127.0.0.1:%d" % free_port()
    peer_url = "http://127.0.0.1:%d" % free_port()
    etcd = subprocess.Popen(["/usr/bin/etcd", "--name", "m", "--data-dir", os.path.join(work, "etcd"),
                             "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
                             "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
                             "--initial-cluster", "m=" + peer_url, "--logger=zap",
                             "--log-outputs=" + os.path.join(work, "etcd.log")])
    nodes = []
    try:
        eventually(lambda: etcd_healthy(etcd_url), 20, "etcd healthy")
        # Members authenticate each other (the handoff's `_cluster` calls take
        # only trusted nodes), and so does this client (CURVE to every node).
        keys_dir = os.path.join(work, "keys")
        with open(os.path.join(work, "trust.toml"), "w") as trust:
            for name, role in (("n1", "node"), ("n2", "node"), ("tester", "client")):
                subprocess.run([cohort, "keys", "new", name, "--dir", keys_dir], check=True, capture_output=True)
                public = subprocess.run([cohort, "keys", "show", os.path.join(keys_dir, name + ".key.pub")],
                                        check=True, capture_output=True, text=True).stdout.strip().split()[-1]
                trust.write('[[peer]]\nname = "%s"\nrole = "%s"\nkey = "%s"\n' % (name, role, public))
                if role == "client":
                    trust.write('services = ["*"]\n')

        def keys_to(node):
            return CurveKeys.from_files(os.path.join(keys_dir, node + ".key.pub"),
                                        os.path.join(keys_dir, "tester.key"))
        endpoints = []
        for name in ("n1", "n2"):
            # Ports the node picks and prints (a port found free and let go may be taken by then).
            config = os.path.join(work, name + ".toml")
            with open(config, "w") as f:
                f.write('[node]\nname = "%s"\nlisten = ["tcp://127.0.0.1:*"]\nadmin = "tcp://127.0.0.1:*"\ndata_dir = "%s"\n'
                        '[security]\nkeyless_loopback = false\nkey_file = "%s"\ntrust_file = "%s"\n'
                        '[cluster]\netcd = ["%s"]\nname = "py"\nlease_ttl_ms = 3000\nshards = %d\npoll_ms = 100\n'
                        '[services.counter]\n' % (name, os.path.join(work, name),
                                                   os.path.join(keys_dir, name + ".key"),
                                                   os.path.join(work, "trust.toml"), etcd_url, SHARDS))
            proc, endpoint = start_node(cohort, config)
            nodes.append(proc)
            endpoints.append(endpoint)
        keys = ["k%d" % i for i in range(40)]
        plain = Client(endpoints[0], timeout=2.0, curve=keys_to("n1"))

        def all_served():
            try:
                for k in keys:
                    plain.call("counter", "get", None, key=k)
                return True
            except CohortError:
                return False
        eventually(all_served, 30, "every shard placed")
        time.sleep(1.0)  # placement settles over the two (no handoff going on)

        with ClusterClient(endpoints[0], timeout=5.0, curve=keys_to("n1")) as cc:
            for k in keys:
                assert cc.call("counter", "add", {"n": 1}, key=k)["value"] == 1, k
            assert 0 < cc.redirects <= SHARDS, cc.redirects  # n2's keys: told once per shard, then remembered
            first = cc.redirects
            direct_before = cc.direct
            for k in keys:
                assert cc.call("counter", "add", {"n": 1}, key=k)["value"] == 2, k
            assert cc.redirects == first, (cc.redirects, first)
            assert cc.direct - direct_before == len(keys), cc.direct - direct_before
            owners = {cc.owner_endpoint("counter", k) for k in keys}
            assert owners == set(endpoints), owners  # both nodes own some
            # What it remembers is what the nodes say: the owner serves a
            # key asked with `shard` set; the other answers wrong_shard naming it.
            for k in keys:
                mine = cc.owner_endpoint("counter", k)
                other = endpoints[1] if mine == endpoints[0] else endpoints[0]
                node_of = {endpoints[0]: "n1", endpoints[1]: "n2"}
                with Client(mine, timeout=2.0, curve=keys_to(node_of[mine])) as c:
                    assert c.call("counter", "get", None, key=k, shard=0)["value"] == 2
                    assert c.last_header.get("shard") == shard_of_key(k, SHARDS)
                with Client(other, timeout=2.0, curve=keys_to(node_of[other])) as c:
                    try:
                        c.call("counter", "get", None, key=k, shard=0)
                        raise AssertionError("%s served %s, which it does not own" % (other, k))
                    except CohortError as e:
                        assert e.code == "wrong_shard", e
                        assert e.owner["endpoint"] == mine and e.owner["shards"] == SHARDS, e.owner
                        assert e.owner["shard"] == shard_of_key(k, SHARDS), e.owner
        plain.close()
        print("ok: %d keys, %d redirects followed, then every call straight to its owner" % (len(keys), first))
    finally:
        for proc in nodes:
            stop_node(proc)
        etcd.kill()
        etcd.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
