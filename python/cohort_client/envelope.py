"""The two frames of a message: the msgpack header map, then the payload."""
import time

import msgpack

from .errors import CohortError

PROTOCOL_VERSION = 1


def request_frames(request_id, service, method, args, timeout_s, key=None, idempotency_key=None, traceparent=None,
                   tracestate=None, trace=None, shard=None):
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
    if shard is not None:  # (clusters) serve it only where the key's shard is owned, else say who owns it
        header["shard"] = shard
    return [msgpack.packb(header, use_bin_type=True), msgpack.packb(args, use_bin_type=True)]


def _owner(body):
    """The `owner` of a wrong_shard error, checked; None when absent or malformed."""
    owner = body.get("owner")
    if body.get("code") != "wrong_shard" or not isinstance(owner, dict):
        return None
    texts = ("node", "endpoint", "server_key")
    numbers = ("shard", "shards", "epoch")
    if not all(isinstance(owner.get(k, ""), str) and len(owner.get(k, "")) <= 1024 for k in texts):
        return None
    if not all(isinstance(owner.get(k, 0), int) and owner.get(k, 0) >= 0 for k in numbers):
        return None
    if not owner.get("endpoint") or (owner.get("shards", 0) and owner.get("shard", 0) >= owner["shards"]):
        return None
    return {k: owner.get(k, "" if k in texts else 0) for k in texts + numbers}


def read_reply(frames):
    """(id, result) of a reply; (id, CohortError) of an error reply. Raises
    CohortError('bad_reply') for frames that are not a Cohort reply."""
    reply_id, _, result = read_reply_with_header(frames)
    return reply_id, result


def read_reply_with_header(frames):
    """(id, header, result) of a reply; (id, header, CohortError) of an error reply."""
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
        return header["id"], header, CohortError(body.get("code", "internal"), body.get("message", ""),
                                                 owner=_owner(body))
    return header["id"], header, body
