"""Every error purgebridge raises on purpose.

Callers catch the narrowest class that lets them act; the CLI maps them to
exit codes (``ConfigError`` and ``InvalidURL`` -> 2, delivery problems -> 1)::

    PurgebridgeError
    ├── ConfigError            a setting is missing or has a bad value (names the variable)
    │   └── VCLParseError      the VCL acl could not be read (names file and line)
    ├── InvalidURL             a URL that must not be sent (CR/LF, spaces, no host, bad scheme)
    ├── InvalidEvent           an event or webhook body that breaks the schema (names the field)
    ├── SignatureError         missing, wrong, stale or replayed HMAC signature
    └── TransportError         one node could not be talked to
        ├── ConnectError       connection refused / unreachable
        ├── ReadTimeout        the node did not answer in time
        └── ProtocolError      the node closed or answered with something that is not HTTP/1.1
"""


class PurgebridgeError(Exception):
    """Base class: anything purgebridge raises deliberately."""


class ConfigError(PurgebridgeError):
    """A bad setting. ``str()`` is the one line the CLI prints before exiting 2."""

    def __init__(self, variable, value, expected):
        self.variable = variable
        self.value = value
        self.expected = expected
        super().__init__(f"{variable}={value!r}: {expected}")


class VCLParseError(ConfigError):
    """The VCL file could not be turned into a node list."""

    def __init__(self, path, line, message):
        self.path = path
        self.line = line
        PurgebridgeError.__init__(self, f"{path}:{line}: {message}")
        self.variable, self.value, self.expected = "PURGEBRIDGE_VCL", str(path), message


class InvalidURL(PurgebridgeError):
    """A URL rejected before anything was sent."""

    def __init__(self, url, reason):
        self.url = url
        self.reason = reason
        super().__init__(f"invalid URL {url!r}: {reason}")


class InvalidEvent(PurgebridgeError):
    """An event body that does not match the schema; ``field`` is a dotted path."""

    def __init__(self, field, message):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)


class SignatureError(PurgebridgeError):
    """The request signature is missing, wrong, too old, or was already used."""

    def __init__(self, message, replay=False):
        self.replay = replay
        super().__init__(message)


class TransportError(PurgebridgeError):
    """A node could not be talked to; ``reason`` is short and fit for a table."""


class ConnectError(TransportError):
    pass


class ReadTimeout(TransportError):
    pass


class ProtocolError(TransportError):
    pass
