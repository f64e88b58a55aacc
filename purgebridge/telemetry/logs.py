"""Logging for ``purgebridge serve``: one JSON object per line, secrets never written.

JSON because the relay runs under systemd/containers where logs are shipped
and queried by field. Modules log with ``logging.getLogger(__name__)`` and
lazy ``%s`` arguments as usual; this module only decides the format.

Secrets: nothing in purgebridge logs a secret or token on purpose, and
:class:`RedactSecrets` is the belt to those braces -- every record's final
message (and exception text) has any configured secret value replaced by
``***`` before it is written.
"""

import datetime
import json
import logging
import sys
from typing import Any, Dict, Iterable, List, Optional, Protocol, TextIO

__all__ = ["RedactSecrets", "JSONFormatter", "setup_logging", "secrets_of"]

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class RedactSecrets(logging.Filter):
    """Replace every configured secret value in a record with ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Longest first so a secret that contains another is replaced whole.
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def _clean(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = self._clean(record.getMessage())
        record.msg, record.args = message, None
        if record.exc_info:
            record.exc_text = self._clean(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        for name, value in list(vars(record).items()):
            if name not in _STANDARD and isinstance(value, str):
                setattr(record, name, self._clean(value))
        return True


class JSONFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", ...extra fields, "exc"}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: Dict[str, Any] = {
            "ts": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD and not name.startswith("_"):
                entry[name] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``time level logger: message``, one line per record: CR and LF in a message are escaped.

    A message may carry a client's text (a refused path): with a raw newline
    the client could write a forged line of its own into a text log. The
    traceback that may follow a message keeps its lines.
    """

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = record.message.replace("\r", "\\r").replace("\n", "\\n")
        return super().formatMessage(record)


def setup_logging(fmt: str = "json", level: int = logging.INFO, secrets: Iterable[str] = (),
                  stream: Optional[TextIO] = None) -> logging.Handler:
    """Configure the root logger for the service; returns the handler (tests remove it).

    The service owns logging: handlers put there before (the CLI's plain
    stderr handler, granian's) are removed, or every line would appear twice.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(TextFormatter())
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    setattr(handler, "_purgebridge", True)  # marks the service's own handler
    root.addHandler(handler)
    root.setLevel(level)
    return handler


class _Credentials(Protocol):
    """What :func:`secrets_of` reads of ``config.settings.Settings`` (telemetry may not import config)."""

    @property
    def secret(self) -> str: ...

    @property
    def webhook_token(self) -> str: ...

    @property
    def admin_token(self) -> str: ...


class _Tenant(Protocol):
    @property
    def secret(self) -> str: ...


def secrets_of(settings: _Credentials, sites: Optional[Iterable[_Tenant]] = None) -> List[str]:
    """Every secret value the service knows: the global ones and each site's."""
    found = [settings.secret, settings.webhook_token, settings.admin_token]
    if sites is not None:
        found.extend(site.secret for site in sites)
        for site in sites:
            cms = getattr(site, "cms", None)
            found += [cms.ghost.secret if cms and cms.ghost else "", cms.templates.token if cms and cms.templates else ""]
    return [s for s in found if s]
