"""Synchronous client: one DEALER socket, calls matched to replies by id."""
import itertools
import time

import zmq

from .envelope import read_reply_with_header, request_frames
from .errors import CohortError


class CurveKeys:
    """CURVE keys for a node that authenticates its clients (docs/security.md):
    the node's public key and this client's key pair, Z85 text."""

    def __init__(self, server_key, public_key, secret_key):
        self.server_key, self.public_key, self.secret_key = server_key, public_key, secret_key

    def apply(self, sock):
        sock.curve_serverkey = self.server_key.encode()
        sock.curve_publickey = self.public_key.encode()
        sock.curve_secretkey = self.secret_key.encode()

    @staticmethod
    def from_files(server_key_file, key_file):
        """Reads `cohort keys new` files (TOML): this client's NAME.key
        (public, secret) and the node's node.key.pub (public)."""
        import tomllib  # Python 3.11; the files are TOML, read by the standard library

        with open(server_key_file, "rb") as f:
            server = tomllib.load(f)["public"]
        with open(key_file, "rb") as f:
            mine = tomllib.load(f)
        return CurveKeys(server, mine["public"], mine["secret"])


def connect_dealer(context, endpoint, curve):
    """A DEALER socket to `endpoint` (with CURVE keys when given) that drops unsent messages on close."""
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    if curve is not None:
        curve.apply(sock)
    sock.connect(endpoint)
    return sock


class Client:
    """Calls services at `endpoint` ("tcp://host:port", "ipc://path"). Not
    thread-safe: one client per thread (ZeroMQ sockets are not shared)."""

    def __init__(self, endpoint, timeout=5.0, curve=None, context=None):
        self._sock = connect_dealer(context or zmq.Context.instance(), endpoint, curve)
        self._ids = itertools.count(1)
        self._early = {}  # replies to calls still to be collected (send/receive): id -> (header, result)
        self.timeout = timeout
        self.last_header = None  # the header of the last reply receive() returned (its shard, epoch, ...)

    def close(self):
        self._sock.close(0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, service, method, args=None, timeout=None, **options):
        """Sends a request; returns its id, to collect with receive()."""
        request_id = next(self._ids)
        self._sock.send_multipart(request_frames(request_id, service, method, args, timeout or self.timeout, **options))
        return request_id

    def receive(self, request_id, timeout=None):
        """The result of request `request_id`; raises CohortError."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while request_id not in self._early:
            left = deadline - time.monotonic()
            if left <= 0 or not self._sock.poll(int(left * 1000) + 1):
                raise CohortError("timeout", "no reply within %.3f s" % (timeout or self.timeout), local=True)
            reply_id, header, result = read_reply_with_header(self._sock.recv_multipart())
            self._early[reply_id] = (header, result)
        self.last_header, result = self._early.pop(request_id)
        if isinstance(result, CohortError):
            raise result
        return result

    def call(self, service, method, args=None, key=None, idempotency_key=None, timeout=None, traceparent=None,
             tracestate=None, shard=None):
        """Calls service.method with `args` (anything msgpack can pack) and
        returns the decoded result; raises CohortError with the reply's code.
        `shard` (clusters): serve it only where the key's shard is owned, else
        raise `wrong_shard` naming the owner (ClusterClient does this for you)."""
        request_id = self.send(service, method, args, timeout, key=key, idempotency_key=idempotency_key,
                               traceparent=traceparent, tracestate=tracestate, shard=shard)
        return self.receive(request_id, timeout)
