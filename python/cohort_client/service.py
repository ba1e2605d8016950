"""Hosting a service written in Python (docs/python.md, Services in Python).

A Service binds a ROUTER socket of its own, speaking docs/protocol.md as a
node does, and registers with a node through the same discovery nodes use
(`_registry` heartbeats, docs/protocol.md): it authenticates with a CURVE key
the node trusts as a `node`, and the node then reaches its endpoint over CURVE
with the key the heartbeat came with. Calls to the service through that node
(from clients, HTTP, or other services' `ctx.call`) are forwarded to it; it
can call other services through the node. Handlers run one at a time, in the
order requests arrive; run more processes for more throughput (each
registers, and the node balances over them)."""
import itertools
import threading
import time
import traceback

import msgpack
import zmq
import zmq.auth.thread
import zmq.utils.z85

from .client import Client, CurveKeys
from .envelope import PROTOCOL_VERSION
from .errors import CohortError

HEARTBEAT_S = 0.5  # the node forgets an instance after three missed heartbeats (its registration timeout)


class Context:
    """What a handler knows of its request, and calls to other services."""

    def __init__(self, service, header, deadline):
        self._service, self.header, self.deadline = service, header, deadline
        self.method = header.get("method")
        self.key = header.get("key")
        self.caller = header.get("caller", "anonymous")  # set by the node, never by the client
        self.trace = header.get("trace")
        self.traceparent = header.get("traceparent")

    def remaining(self):
        """Seconds left of the request's deadline."""
        return max(0.0, self.deadline - time.monotonic())

    def call(self, service, method, args=None, key=None, idempotency_key=None, timeout=None):
        """Calls another service through the node, within this request's deadline, in its trace."""
        budget = min(timeout or self.remaining(), self.remaining())
        if budget <= 0:
            raise CohortError("timeout", "no time left of the request's deadline", local=True)
        return self._service._client().call(service, method, args, key=key, idempotency_key=idempotency_key,
                                            timeout=budget, traceparent=self.traceparent)


class Service:
    """A service named `name`, registered with the node at `node`.

    keys: CurveKeys with the node's public key and this service's key pair
    (its public key is in the node's trust list with `role = "node"`).
    bind: where it listens ("tcp://127.0.0.1:*": a free port); advertise:
    the endpoint the node is told (default: the bound one). accept: the
    public keys allowed to connect (default: the node's)."""

    def __init__(self, name, node, keys, bind="tcp://127.0.0.1:*", advertise=None, accept=None, context=None):
        self.name, self.node, self.keys = name, node, keys
        # A context of its own: a context has one ZAP handler, and each service authenticates its own peers.
        self._own_ctx = context is None
        self._ctx = context or zmq.Context()
        self._methods = {}
        self._stop = threading.Event()
        self._auth = zmq.auth.thread.ThreadAuthenticator(self._ctx)
        self._auth.start()
        allowed = {k.encode() if isinstance(k, str) else k for k in (accept or [keys.server_key])}
        self._auth.configure_curve_callback(domain="*", credentials_provider=_AllowKeys(allowed))
        self._sock = self._ctx.socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.curve_server = True
        self._sock.curve_publickey = keys.public_key.encode()
        self._sock.curve_secretkey = keys.secret_key.encode()
        self._sock.bind(bind)
        self.endpoint = advertise or self._sock.getsockopt(zmq.LAST_ENDPOINT).decode()
        self._registry = self._ctx.socket(zmq.DEALER)
        self._registry.setsockopt(zmq.LINGER, 0)
        keys.apply(self._registry)
        self._registry.connect(node)
        self._ids = itertools.count(1)
        self._calls = None
        self.served = 0

    def method(self, name):
        """Decorator: `@svc.method("hello")` on `def hello(ctx, args): return result`.
        Raise CohortError(code, message) for a business error."""

        def register(fn):
            self._methods[name] = fn
            return fn

        return register

    def stop(self):
        self._stop.set()

    def run(self):
        """Serves until stop(): registers every HEARTBEAT_S, answers requests."""
        next_beat = 0.0
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= next_beat:
                    self._heartbeat()
                    next_beat = now + HEARTBEAT_S
                if self._sock.poll(int(max(0.0, next_beat - time.monotonic()) * 1000) + 1):
                    self._serve(self._sock.recv_multipart())
        finally:
            self.close()

    def close(self):
        if self._calls is not None:
            self._calls.close()
        self._sock.close(0)
        self._registry.close(0)
        self._auth.stop()
        if self._own_ctx:
            self._ctx.term()

    # -- the protocol ---------------------------------------------------------

    def _client(self):
        if self._calls is None:
            self._calls = Client(self.node, curve=self.keys, context=self._ctx)
        return self._calls

    def _heartbeat(self):
        header = {"v": PROTOCOL_VERSION, "kind": "oneway", "id": next(self._ids), "service": "_registry",
                  "method": "heartbeat", "sent_ms": int(time.time() * 1000)}
        body = {"endpoint": self.endpoint, "services": [self.name], "curve": True}
        try:
            self._registry.send_multipart([msgpack.packb(header), msgpack.packb(body)], zmq.DONTWAIT)
        except zmq.Again:
            pass  # not connected yet: the next heartbeat goes

    def _serve(self, frames):
        if len(frames) < 3:
            return
        route, header_bytes, payload = frames[:-2], frames[-2], frames[-1]
        try:
            header = msgpack.unpackb(header_bytes, raw=False)
            args = msgpack.unpackb(payload, raw=False)
        except Exception as e:  # noqa: BLE001 - anything msgpack raises on bad bytes
            return self._reply(route, {"id": 0}, CohortError("bad_request", "not msgpack: %s" % e))
        if not isinstance(header, dict) or header.get("v") != PROTOCOL_VERSION:
            return self._reply(route, header if isinstance(header, dict) else {"id": 0},
                               CohortError("bad_request", "not a protocol v1 header"))
        kind = header.get("kind")
        if kind not in ("request", "oneway"):
            return
        budget_s = (header.get("deadline_ms") or 30000) / 1000.0
        sent = header.get("sent_ms")
        if sent:
            budget_s -= max(0.0, time.time() - sent / 1000.0 - 0.25)  # time in transit counts (250 ms of clock skew allowed)
        if budget_s <= 0:
            return self._reply(route, header, CohortError("timeout", "arrived after its deadline: not run"), kind)
        handler = self._methods.get(header.get("method"))
        if header.get("service") != self.name or handler is None:
            code = "unknown_service" if header.get("service") != self.name else "unknown_method"
            return self._reply(route, header, CohortError(code, "%s.%s is not served here" % (
                header.get("service"), header.get("method"))), kind)
        ctx = Context(self, header, time.monotonic() + budget_s)
        try:
            result = handler(ctx, args)
        except CohortError as e:
            result = e
        except Exception as e:  # noqa: BLE001 - a handler's failure is the caller's `internal`, never the loop's end
            traceback.print_exc()
            result = CohortError("internal", "%s: %s" % (type(e).__name__, e))
        self.served += 1
        self._reply(route, header, result, kind)

    def _reply(self, route, header, result, kind="request"):
        if kind != "request":
            return  # a oneway gets no reply, not even an error
        error = isinstance(result, CohortError)
        out = {"v": PROTOCOL_VERSION, "kind": "error" if error else "reply", "id": header.get("id", 0)}
        if header.get("trace"):
            out["trace"] = header["trace"]
        body = {"code": result.code, "message": result.message} if error else result
        self._sock.send_multipart(route + [msgpack.packb(out), msgpack.packb(body, use_bin_type=True)])


class _AllowKeys:
    """ZAP credentials: only the listed CURVE public keys (Z85) may connect."""

    def __init__(self, allowed):
        self.allowed = allowed

    def callback(self, domain, key):
        return zmq.utils.z85.encode(key) in self.allowed if len(key) == 32 else key in self.allowed
