"""Cohort client for Python: calls Cohort services over ZeroMQ with msgpack,
as docs/protocol.md describes, synchronously (Client) or with asyncio
(AsyncClient), at the owners of a cluster's shards (ClusterClient), subscribes to services' events (Subscription), and hosts services written in
Python (Service). Depends only on pyzmq and msgpack (Debian: python3-zmq,
python3-msgpack)."""
from .errors import CohortError
from .client import Client, CurveKeys
from .aio import AsyncClient
from .cluster import ClusterClient, shard_of_key
from .subscription import Event, Subscription
from .service import Context, Service

__all__ = ["Client", "AsyncClient", "ClusterClient", "shard_of_key", "CohortError", "CurveKeys", "Event", "Subscription", "Service", "Context"]
