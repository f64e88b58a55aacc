"""Storage: the durable journal of accepted events and the per-node delivery queue.

One contract (``contract.Store``, with its records ``Claim`` and
``Enqueued``), two backends: SQLite (``sqlite.Queue``, one file, the
default) and Redis Streams (``redis.RedisQueue``, several relays on one
queue); what both do the same way is written once, in ``contract.Backend``.
SQLite writes go through one writer thread a process (``writer``), whose
batching policy is the journal's group commit (``journal``).
:func:`open_queue` is the one factory: the app, the worker process and the
CLI open "the queue" from ``PURGEBRIDGE_QUEUE`` without knowing which
engine is behind it. redis-py is an optional extra, so it is imported
only when asked for, and its absence is a configuration error that says what
to install. Nothing in this package imports the HTTP API or the fan-out.
"""

from typing import Any, Optional, Tuple

from purgebridge.core.errors import ConfigError
from purgebridge.store.contract import REPLAY_WINDOW, Claim, Enqueued, QueueSettings, Store

__all__ = ["REPLAY_WINDOW", "Claim", "Enqueued", "QueueSettings", "Store", "is_redis", "open_queue", "queue_file_gone",
           "queue_file_identity"]

REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "redis+sentinel://")


def is_redis(location: str) -> bool:
    """True when ``PURGEBRIDGE_QUEUE`` names a Redis server rather than a SQLite file."""
    return str(location).lower().startswith(REDIS_SCHEMES)


def open_queue(settings: QueueSettings, **kwargs: Any) -> Store:
    """The queue ``settings.queue`` names: a SQLite ``Queue`` or a ``RedisQueue``."""
    if is_redis(settings.queue):
        try:
            from purgebridge.store.redis import RedisQueue
        except ImportError as exc:
            raise ConfigError("PURGEBRIDGE_QUEUE", settings.queue.split("@")[-1],
                              f"a Redis queue needs redis-py: pip install 'purgebridge[redis]' ({exc})") from None
        return RedisQueue.from_settings(settings, **kwargs)
    from purgebridge.store.sqlite import Queue

    return Queue.from_settings(settings, **kwargs)


def queue_file_identity(location: str) -> Optional[Tuple[int, int]]:
    """The (device, inode) of the SQLite queue file ``location`` names; None for Redis or no file yet.

    ``serve``'s supervisor compares it over time: a queue file deleted or
    replaced under a running relay is noticed even by a worker that could not
    open it.
    """
    if is_redis(location):
        return None
    from purgebridge.store.sqlite import file_identity

    return file_identity(location)


def queue_file_gone(location: str, expected: Optional[Tuple[int, int]]) -> Optional[str]:
    """Why ``location`` no longer names the queue file :func:`queue_file_identity` saw as ``expected``, or None."""
    if expected is None or is_redis(location):
        return None
    from purgebridge.store.sqlite import gone_since

    return gone_since(location, expected)
