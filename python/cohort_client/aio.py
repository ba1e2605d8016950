"""asyncio client: any number of calls in flight on one socket, each awaiting
its own reply (matched by id) with its own deadline."""
import asyncio
import itertools

import zmq.asyncio

from .client import connect_dealer
from .envelope import read_reply, request_frames
from .errors import CohortError


class AsyncClient:
    """Calls services at `endpoint` from one event loop."""

    def __init__(self, endpoint, timeout=5.0, curve=None, context=None):
        self._sock = connect_dealer(context or zmq.asyncio.Context.instance(), endpoint, curve)
        self._ids = itertools.count(1)
        self._waiting = {}
        self._reader = None
        self.timeout = timeout

    async def close(self):
        if self._reader:
            self._reader.cancel()
            try:
                await self._reader
            except asyncio.CancelledError:
                pass
        self._sock.close(0)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    async def _read(self):
        while True:
            frames = await self._sock.recv_multipart()
            try:
                reply_id, result = read_reply(frames)
            except CohortError:
                continue  # not a reply to anything: dropped
            future = self._waiting.pop(reply_id, None)
            if future is not None and not future.done():
                future.set_result(result)

    async def call(self, service, method, args=None, key=None, idempotency_key=None, timeout=None, traceparent=None,
                   tracestate=None):
        """Calls service.method; returns the result or raises CohortError."""
        if self._reader is None:
            self._reader = asyncio.ensure_future(self._read())
        timeout = timeout or self.timeout
        request_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        await self._sock.send_multipart(request_frames(request_id, service, method, args, timeout, key=key,
                                                       idempotency_key=idempotency_key, traceparent=traceparent,
                                                       tracestate=tracestate))
        try:
            result = await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise CohortError("timeout", "no reply within %.3f s" % timeout, local=True) from None
        finally:
            self._waiting.pop(request_id, None)
        if isinstance(result, CohortError):
            raise result
        return result
