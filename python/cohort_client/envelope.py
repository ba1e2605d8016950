"""The two frames of a message: the msgpack header map, then the payload."""
import time

import msgpack

from .errors import CohortError

PROTOCOL_VERSION = 1


def request_frames(request_id, service, method, args, timeout_s, key=None, idempotency_key=None, traceparent=None,
                   tracestate=None, trace=None):
    header = {"v": PROTOCOL_VERSION, "kind": "request", "id": request_id, "service": service, "method": method,
              "deadline_ms": max(1, int(timeout_s * 1000)), "sent_ms": int(time.time() * 1000)}
    if key is not None:
        header["key"] = key
    if idempotency_key is not None:
        header["idem"] = idempotency_key
    if traceparent is not None:
        header["traceparent"] = traceparent
    if tracestate is not None:
        header["tracestate"] = tracestate
    if trace is not None:
        header["trace"] = trace
    return [msgpack.packb(header, use_bin_type=True), msgpack.packb(args, use_bin_type=True)]


def read_reply(frames):
    """(id, result) of a reply; (id, CohortError) of an error reply. Raises
    CohortError('bad_reply') for frames that are not a Cohort reply."""
    if len(frames) != 2:
        raise CohortError("bad_reply", "a reply has two frames, got %d" % len(frames), local=True)
    try:
        header = msgpack.unpackb(frames[0], raw=False)
        body = msgpack.unpackb(frames[1], raw=False)
    except Exception as e:  # noqa: BLE001 - anything msgpack raises on bad bytes
        raise CohortError("bad_reply", "reply is not msgpack: %s" % e, local=True)
    if not isinstance(header, dict) or "id" not in header:
        raise CohortError("bad_reply", "reply header is not a map with an id", local=True)
    if header.get("kind") == "error":
        body = body if isinstance(body, dict) else {}
        return header["id"], CohortError(body.get("code", "internal"), body.get("message", ""))
    return header["id"], body
