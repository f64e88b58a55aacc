"""Which queue backend a relay uses: SQLite by default, Redis Streams for ``redis://`` URLs.

Why a factory: the app, the server and the CLI open "the queue" from
``PURGEBRIDGE_QUEUE`` without knowing which engine is behind it; both
backends implement the contract in the ``purgebridge.queue`` docstring.
redis-py is an optional extra, so it is imported only when asked for, and
its absence is a configuration error that says what to install.
"""

from purgebridge.errors import ConfigError

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def is_redis(location):
    """True when ``PURGEBRIDGE_QUEUE`` names a Redis server rather than a SQLite file."""
    return str(location).lower().startswith(REDIS_SCHEMES)


def open_queue(settings, **kwargs):
    """The queue ``settings.queue`` names: a SQLite ``Queue`` or a ``RedisQueue``."""
    if is_redis(settings.queue):
        try:
            from purgebridge.redisqueue import RedisQueue
        except ImportError as exc:
            raise ConfigError("PURGEBRIDGE_QUEUE", settings.queue.split("@")[-1],
                              f"a Redis queue needs redis-py: pip install 'purgebridge[redis]' ({exc})") from None
        return RedisQueue.from_settings(settings, **kwargs)
    from purgebridge.queue import Queue

    return Queue.from_settings(settings, **kwargs)
