"""Subscriptions to a service's events (docs/protocol.md, Events for clients).

A Subscription has a connection of its own. get() returns the next event;
asking for the next one acknowledges the ones before it (at-least-once: an
event is delivered again after a reconnect unless it was acknowledged). The
node sends at most `window` unacknowledged events; acknowledgements also
keep the subscription alive, so call get() at least every few seconds (it
returns None after its timeout when nothing came)."""
import itertools
import time
from collections import deque, namedtuple

import msgpack
import zmq

from .client import connect_dealer
from .envelope import PROTOCOL_VERSION
from .errors import CohortError

Event = namedtuple("Event", "service topic seq key event_id data")
"""One event: its publisher, topic, position in the publisher's log, the
publishing entity's key, its unique id (for deduplication) and its payload."""

ACK_EVERY_S = 5.0  # well within the node's idle timeout (30 s by default)


class Subscription:
    """Events `service` publishes, optionally only `topics`. With a `name` it is
    durable: the node keeps its position, and a subscription of the same name
    resumes after the last acknowledged event (it takes over from an older
    one still connected). `start`: the first sequence number wanted (0: the
    oldest the log keeps); by default only events published from now on (or,
    durable, from the stored position). `on_lagging(missed, next)` is called
    when the node skipped events: a live subscriber more than `max_lag`
    behind, or events trimmed by the log's retention before they were read."""

    def __init__(self, endpoint, service, topics=None, name=None, start=None, window=256, max_lag=None,
                 on_lagging=None, curve=None, context=None, timeout=5.0):
        self._sock = connect_dealer(context or zmq.Context.instance(), endpoint, curve)
        self._ids = itertools.count(1)
        self.service, self.topics, self.name, self.window = service, list(topics or []), name, window
        self.max_lag, self.on_lagging, self.timeout = max_lag, on_lagging, timeout
        self.missed = 0  # events the node said were skipped
        self._queue = deque()
        self._last_seq = None  # the last event handed out
        self._acked = None
        self._unacked = 0
        self._last_ack = time.monotonic()
        self._subscribe(start)

    def close(self):
        """Ends the subscription (a durable one keeps its position) and the connection."""
        try:
            self._ack(force=True)
            self._send("_unsubscribe", {"subscription": self.id})
        finally:
            self._sock.close(0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __iter__(self):
        while True:
            e = self.get()
            if e is not None:
                yield e

    def get(self, timeout=None):
        """The next event, or None when none came within `timeout` seconds."""
        if self._last_seq is not None:
            self._unacked += 1
        if self._unacked >= max(1, self.window // 2) or time.monotonic() - self._last_ack >= ACK_EVERY_S:
            self._ack()
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not self._queue:
            left = deadline - time.monotonic()
            if left <= 0 or not self._sock.poll(int(left * 1000) + 1):
                self._ack(force=True)  # nothing came: still here
                return None
            self._read(self._sock.recv_multipart())
        event = self._queue.popleft()
        self._last_seq = event.seq
        return event

    # -- the protocol ---------------------------------------------------------

    def _send(self, method, args):
        rid = next(self._ids)
        header = {"v": PROTOCOL_VERSION, "kind": "request", "id": rid, "service": self.service, "method": method,
                  "deadline_ms": int(self.timeout * 1000), "sent_ms": int(time.time() * 1000)}
        self._sock.send_multipart([msgpack.packb(header), msgpack.packb(args)])
        return rid

    def _subscribe(self, start):
        args = {"window": self.window}
        if self.topics:
            args["topics"] = self.topics
        if self.name:
            args["name"] = self.name
        if start is not None:
            args["from"] = start
        if self.max_lag:
            args["max_lag"] = self.max_lag
        self._request_id = self._send("_subscribe", args)
        deadline = time.monotonic() + self.timeout
        self._subscribed = None
        while self._subscribed is None:
            left = deadline - time.monotonic()
            if left <= 0 or not self._sock.poll(int(left * 1000) + 1):
                raise CohortError("timeout", "no answer to _subscribe within %.1f s" % self.timeout, local=True)
            self._read(self._sock.recv_multipart())
        if isinstance(self._subscribed, CohortError):
            raise self._subscribed
        self.id = self._subscribed["subscription"]
        self.head = self._subscribed["head"]
        self._unacked, self._last_ack = 0, time.monotonic()

    def _ack(self, force=False):
        if self._last_seq is not None and (force or self._acked != self._last_seq):
            self._send("_ack", {"subscription": self.id, "seq": self._last_seq})
            self._acked = self._last_seq
        elif force:
            self._send("_ack", {"subscription": self.id})  # a heartbeat
        self._unacked, self._last_ack = 0, time.monotonic()

    def _read(self, frames):
        if len(frames) != 2:
            return
        header = msgpack.unpackb(frames[0], raw=False)
        body = msgpack.unpackb(frames[1], raw=False)
        kind = header.get("kind")
        if kind == "event" and header.get("id") == self._request_id:
            topic = header.get("method", "")
            if topic == "_lagging":
                self.missed += body.get("missed", 0)
                if self.on_lagging:
                    self.on_lagging(body.get("missed", 0), body.get("next", 0))
            elif topic == "_end":
                self._resubscribe()
            else:
                self._queue.append(Event(header.get("service"), topic, header.get("seq", 0), header.get("key"),
                                         header.get("idem"), body))
        elif kind in ("reply", "error") and header.get("id") == self._request_id:
            self._subscribed = body if kind == "reply" else CohortError(body.get("code", "internal"),
                                                                        body.get("message", ""))
        elif kind == "error" and body.get("code") == "bad_request":
            self._resubscribe()  # an _ack the node no longer knows: the subscription ended

    def _resubscribe(self):
        """After the node ended the subscription (restart, idle, a new owner):
        durable ones resume from the stored position, live ones after the last
        event received (from the log, as long as it keeps it)."""
        self._queue.clear()
        start = None if self.name else (self._last_seq + 1 if self._last_seq is not None else None)
        self._subscribe(start)
