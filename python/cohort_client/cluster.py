"""ClusterClient: calls a cluster's services, each call for a sharded entity
service straight to the node that owns its key's shard (docs/cluster.md,
Clients that talk to owners). It starts from one node (the seed), sends
keyed calls with `shard` set so that a node that does not own the key's
shard answers `wrong_shard` naming the owner instead of forwarding, follows
that answer once, and remembers each shard's owner and the shard count."""
import time

import zmq

from .client import Client, CurveKeys
from .errors import CohortError

_FNV_OFFSET, _FNV_PRIME, _MASK = 14695981039346656037, 1099511628211, (1 << 64) - 1
_MAX_CONNECTIONS = 64
_MAX_SHARDS = 4096


def shard_of_key(key, count):
    """The shard of entity `key` among `count` shards: FNV-1a 64 of its UTF-8
    bytes mod `count`, exactly as nodes compute it (0 when count is 0)."""
    h = _FNV_OFFSET
    for b in key.encode() if isinstance(key, str) else key:
        h = ((h ^ b) * _FNV_PRIME) & _MASK
    return h % count if count else 0


class ClusterClient:
    """`seed`: any node's endpoint. `curve`: CurveKeys for the seed (its
    server key and this client's pair); connections to owners use the same
    pair and the server key their redirect named. Not thread-safe."""

    def __init__(self, seed, timeout=5.0, curve=None, context=None):
        self.seed, self.timeout, self._curve = seed, timeout, curve
        self._context = context or zmq.Context.instance()
        self._connections = {}   # endpoint -> Client
        self._server_keys = {}   # endpoint -> the key its redirect named
        self._routes = {}        # service -> {"count": int, "owners": {shard: endpoint}}
        self.direct = self.redirects = self.forgotten = 0
        self.last_endpoint = None

    def close(self):
        for c in self._connections.values():
            c.close()
        self._connections.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _connection(self, endpoint):
        c = self._connections.get(endpoint)
        if c is not None:
            return c
        if len(self._connections) >= _MAX_CONNECTIONS:
            drop = next((e for e in self._connections if e != self.seed), None)
            if drop is not None:
                self._connections.pop(drop).close()
        curve = self._curve
        if curve is not None and endpoint != self.seed:
            key = self._server_keys.get(endpoint, "")
            curve = CurveKeys(key, curve.public_key, curve.secret_key) if key else None  # keyless owner: plain
        c = Client(endpoint, timeout=self.timeout, curve=curve, context=self._context)
        self._connections[endpoint] = c
        return c

    def owner_endpoint(self, service, key):
        """The owner this client remembers for `key` of `service` (None: none)."""
        routes = self._routes.get(service)
        if not routes or not routes["count"]:
            return None
        return routes["owners"].get(shard_of_key(key, routes["count"]))

    def call(self, service, method, args=None, key=None, idempotency_key=None, timeout=None, **options):
        """Like Client.call, at the key's owner; a followed redirect stays within `timeout`."""
        timeout = timeout or self.timeout
        if key is None:
            self.last_endpoint = self.seed
            return self._connection(self.seed).call(service, method, args, key=key, idempotency_key=idempotency_key,
                                                    timeout=timeout, **options)
        routes = self._routes.setdefault(service, {"count": 0, "owners": {}})
        endpoint, shard = self.seed, 0  # shard set: "serve it only if you own it" (the node computes it itself)
        if routes["count"]:
            shard = shard_of_key(key, routes["count"])
            if shard in routes["owners"]:
                endpoint = routes["owners"][shard]
                self.direct += 1
        started = time.monotonic()
        followed = False
        while True:
            self.last_endpoint = endpoint
            conn = self._connection(endpoint)
            try:
                result = conn.call(service, method, args, key=key, idempotency_key=idempotency_key,
                                   timeout=max(0.001, timeout - (time.monotonic() - started)), shard=shard, **options)
            except CohortError as e:
                owner = e.owner if e.code == "wrong_shard" else None
                if owner is None:
                    if endpoint != self.seed and (e.local or e.code == "unavailable"):
                        routes["owners"] = {s: ep for s, ep in routes["owners"].items() if ep != endpoint}
                        self.forgotten += 1
                    raise
                if owner["shards"] and owner["shards"] != routes["count"]:
                    if routes["count"]:
                        routes["owners"].clear()  # re-sharded: forget it all
                    routes["count"] = owner["shards"]
                    routes["owners"] = {s: ep for s, ep in routes["owners"].items() if s < routes["count"]}
                # Bounded like the reply path: a trusted node still cannot grow these without end.
                if routes["count"] and owner["shard"] < routes["count"] and \
                        (owner["shard"] in routes["owners"] or len(routes["owners"]) < _MAX_SHARDS):
                    routes["owners"][owner["shard"]] = owner["endpoint"]
                if owner["server_key"] and (owner["endpoint"] in self._server_keys
                                            or len(self._server_keys) < _MAX_SHARDS):
                    self._server_keys[owner["endpoint"]] = owner["server_key"]
                left = timeout - (time.monotonic() - started)
                if followed or owner["endpoint"] == endpoint or left <= 0:
                    raise
                followed = True
                self.redirects += 1
                endpoint, shard = owner["endpoint"], owner["shard"]
                continue
            header = conn.last_header or {}
            got = header.get("shard")
            if isinstance(got, int) and (not routes["count"] or got < routes["count"]) \
                    and len(routes["owners"]) < _MAX_SHARDS:
                routes["owners"][got] = endpoint
            return result
