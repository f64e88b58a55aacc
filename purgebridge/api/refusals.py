"""Why a request is refused, and the one way a refusal is answered: JSON, counted, logged at a bounded rate.

Every refusal happens before the queue is touched. The checks both the
signed-event route (``signed_events``) and the Flask routes (``routes``) make
-- the site or URL is one this relay may purge, nodes are configured, the
queue could not take the write -- live here with :class:`Refused`, so neither
route module imports the other. Secrets, tokens and bodies are never logged;
a refusal is logged with the route, status and reason only.
"""

import functools
import json
import logging
import threading
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from purgebridge.api.service import Service
from purgebridge.core.errors import InvalidURL
from purgebridge.core.nodes import Node
from purgebridge.core.urls import site_of
from purgebridge.store.contract import redact_location
from purgebridge.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

Answer = Tuple[int, List[Tuple[str, str]], bytes]  # status, headers, body: what the RSGI adapter sends
JSON_HEADER = ("Content-Type", "application/json")


class Refused(Exception):
    """Raised inside a route to answer with ``status`` and queue nothing; ``field`` names the offending field."""

    def __init__(self, status: int, message: str, field: Optional[str] = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


class RateLimitedLog:
    """At most ``per_second`` log lines a second on average (bursts up to ``burst``), then one summary.

    Refusals are logged so an operator sees why a sender fails, but a flood
    of bad requests (33,000 lines in 30 s before) must not fill the disk or
    drown the log: past the budget, lines are counted and the next line that
    fits says how many were left out. The metrics still count every refusal.
    """

    def __init__(self, logger: logging.Logger, per_second: float = 5.0, burst: int = 20,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger, self.per_second, self.burst, self.clock = logger, per_second, burst, clock
        self.tokens, self.stamp, self.dropped = float(burst), clock(), 0
        self.lock = threading.Lock()

    def info(self, message: str, *args: object) -> None:
        with self.lock:
            now = self.clock()
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.per_second)
            self.stamp = now
            if self.tokens < 1:
                self.dropped += 1
                return
            self.tokens -= 1
            dropped, self.dropped = self.dropped, 0
        if dropped:
            self.logger.info(message + " (and %d more refusal(s) not logged)", *args, dropped)
        else:
            self.logger.info(message, *args)


refusal_log = RateLimitedLog(log)


def refusal(metrics: Metrics, route: str, method: str, path: str, exc: Refused,
            headers: Sequence[Tuple[str, str]] = (), sender: str = "") -> Answer:
    """The answer to a refused request: its JSON body (``error``, ``field``), counted by route and status, logged.

    The log line names the route and, when given, the sender (its product from the User-Agent and its
    address), so an operator sees which CMS or tool was refused and why.
    """
    metrics.event(route, exc.status)
    refusal_log.info("refused %s %s (route %s%s): %d %s", method, path, route, f", sender {sender}" if sender else "",
                     exc.status, exc.message)
    body: Dict[str, str] = {"error": exc.message}
    if exc.field:
        body["field"] = exc.field
    return exc.status, [JSON_HEADER, *headers], json.dumps(body).encode("utf-8")


# --- the checks both route modules make ---------------------------------------------------

@functools.lru_cache(maxsize=8192)
def host_of(url: str) -> str:
    """``site_of``, cached: the same front-page and archive URLs come with nearly every event."""
    return site_of(url)


def allowed_host(svc: Service, host: str, what: str) -> str:
    """``host``, when it is one of the configured sites; else 403."""
    if host not in svc.sites:
        raise Refused(403, f"{what} is not a site this relay may purge")
    return host


def url_host(svc: Service, url: str, field: str) -> str:
    """The allowed host of ``url`` (400 for a URL that cannot be sent, 403 for another host)."""
    try:
        return allowed_host(svc, host_of(url), f"host of {url!r} ({field})")
    except InvalidURL as exc:
        raise Refused(400, f"{field}: invalid URL: {exc.reason}", field) from None


def configured_nodes(svc: Service) -> Tuple[Node, ...]:
    """The configured nodes; 503 when there are none (nothing could ever be purged)."""
    nodes = svc.settings.nodes
    if not nodes:
        raise Refused(503, "no Varnish nodes configured")
    return nodes


def queue_unavailable(svc: Service, exc: BaseException) -> str:
    """The 503's message when the queue could not be used: which queue (without credentials) and why."""
    return (f"queue unreachable (PURGEBRIDGE_QUEUE={redact_location(svc.settings.queue)}): "
            f"{type(exc).__name__}: {exc}")
