"""Every error purgebridge raises on purpose.

Callers catch the narrowest class that lets them act; the CLI maps them to
exit codes (``ConfigError`` and ``InvalidURL`` -> 2, delivery problems -> 1)::

    PurgebridgeError
    ├── ConfigError            a setting is missing or has a bad value (names the variable)
    │   └── VCLParseError      the VCL acl could not be read (names file and line)
    ├── InvalidURL             a URL that must not be sent (CR/LF, spaces, no host, bad scheme)
    ├── InvalidEvent           an event or webhook body that breaks the schema (names the field)
    ├── SignatureError         missing, wrong, stale or replayed HMAC signature
    ├── QueueError             the queue did not store a write: nothing of it was stored (the api answers 503)
    │   ├── QueueBusy          not written within its wait (another writer held the queue, a slow disk)
    │   ├── QueueClosed        the queue is closed (the process is shutting down)
    │   └── QueueFileGone      the SQLite file was deleted or replaced while the relay ran
    └── TransportError         one node could not be talked to
        ├── ConnectError       connection refused / unreachable
        ├── ReadTimeout        the node did not answer in time
        └── ProtocolError      the node closed or answered with something that is not HTTP/1.1
"""


__all__ = ["PurgebridgeError", "ConfigError", "VCLParseError", "InvalidURL", "InvalidEvent", "SignatureError",
           "QueueError", "QueueBusy", "QueueClosed", "QueueFileGone", "TransportError", "ConnectError",
           "ReadTimeout", "ProtocolError"]


class PurgebridgeError(Exception):
    """Base class: anything purgebridge raises deliberately."""


class ConfigError(PurgebridgeError):
    """A bad setting. ``str()`` is the one line the CLI prints before exiting 2."""

    def __init__(self, variable: str, value: object, expected: str) -> None:
        self.variable = variable
        self.value = value
        self.expected = expected
        super().__init__(f"{variable}={value!r}: {expected}")


class VCLParseError(ConfigError):
    """The VCL file could not be turned into a node list."""

    def __init__(self, path: object, line: int, message: str) -> None:
        self.path = path
        self.line = line
        PurgebridgeError.__init__(self, f"{path}:{line}: {message}")
        self.variable, self.value, self.expected = "PURGEBRIDGE_VCL", str(path), message


class InvalidURL(PurgebridgeError):
    """A URL rejected before anything was sent."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"invalid URL {url!r}: {reason}")


class InvalidEvent(PurgebridgeError):
    """An event body that does not match the schema; ``field`` is a dotted path."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)


class SignatureError(PurgebridgeError):
    """The request signature is missing, wrong, too old, or was already used."""

    def __init__(self, message: str, replay: bool = False) -> None:
        self.replay = replay
        super().__init__(message)


class QueueError(PurgebridgeError):
    """The queue did not store a write (busy, closed, not writable): nothing of it was stored."""


class QueueBusy(QueueError):
    """A write was not done within its wait (another writer held the queue, or the disk was slow)."""


class QueueClosed(QueueError):
    """The queue is closed (the process is shutting down): nothing more is written."""


class QueueFileGone(QueueError):
    """The queue file's path no longer names the file the queue opened (deleted or replaced)."""


class TransportError(PurgebridgeError):
    """A node could not be talked to; ``reason`` is short and fit for a table."""


class ConnectError(TransportError):
    pass


class ReadTimeout(TransportError):
    pass


class ProtocolError(TransportError):
    pass
