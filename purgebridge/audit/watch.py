"""The relay's continuous audit: a few URLs a minute per site, compared on every node.

Opt-in with PURGEBRIDGE_AUDIT_SAMPLE (URLs per minute per site; 0 = off).
One daemon thread, started once where the relay starts its background work
(``server._load_app``), walks each site's URL list (``audit.compare.discover``: the
listing pages first, then the sitemap; read again after every full pass) and
checks one URL at a time with ``audit.compare.Auditor``, waiting between checks so a
site gets its share of the minute. Its only outputs are metrics on the app's
registry and one log line per stale copy:

- ``purgebridge_audit_checked_total``         URLs checked (each on every node)
- ``purgebridge_audit_stale_total{node}``     stale copies found
- ``purgebridge_audit_errors_total{node}``    checks that got no usable answer
- ``purgebridge_audit_stalest_age_seconds``   Age of the oldest copy now known stale (0 when none)

A stale (node, URL) is logged once, when first found; once it is fresh again
it is forgotten, so a new staleness is logged again.
"""

import logging
import threading
from typing import Dict, Iterable, List, Optional, Tuple

from prometheus_client import CollectorRegistry, Counter, Gauge

from purgebridge.audit import compare as audit
from purgebridge.config.settings import Settings

log = logging.getLogger(__name__)

PASS_PAUSE = 5.0  # seconds between a site's passes when its list was short


def check_settings(settings: Settings) -> None:
    """Before the relay binds anything: with the sampler on, the origin must be known (ConfigError otherwise)."""
    if settings.audit_sample:
        audit.resolve_origin(settings)
        audit.load_patterns(settings.audit_ignore_file)


class ContinuousAudit:
    def __init__(self, settings: Settings, hosts: Iterable[str], registry: CollectorRegistry,
                 auditor: Optional[audit.Auditor] = None) -> None:
        self.settings = settings
        self.hosts = list(hosts)
        self.auditor = auditor or audit.Auditor(settings, audit.resolve_origin(settings),
                                                audit.load_patterns(settings.audit_ignore_file),
                                                rate=1000, concurrency=1)
        self.checked = Counter("purgebridge_audit_checked", "URLs the continuous audit checked (on every node)",
                               registry=registry)
        self.stale = Counter("purgebridge_audit_stale", "Stale copies the continuous audit found, per node",
                             ["node"], registry=registry)
        self.errors = Counter("purgebridge_audit_errors", "Audit checks without a usable answer, per node",
                              ["node"], registry=registry)
        self.stalest = Gauge("purgebridge_audit_stalest_age_seconds",
                             "Age (Varnish Age header) of the oldest copy the audit currently knows is stale",
                             registry=registry)
        for node in self.auditor.nodes:  # every node's series exists from the start, at 0
            self.stale.labels(node=node.name)
            self.errors.labels(node=node.name)
        self.known_stale: Dict[Tuple[str, str], float] = {}  # (node, url) -> age
        self.lists: Dict[str, List[str]] = {host: [] for host in self.hosts}
        self.stop_event = threading.Event()
        self.thread: Optional[threading.Thread] = None

    def start(self) -> "ContinuousAudit":
        self.thread = threading.Thread(target=self._run, name="audit-sampler", daemon=True)
        self.thread.start()
        log.info("continuous audit on: %d URL(s) a minute per site, %d site(s), origin %s",
                 self.settings.audit_sample, len(self.hosts), self.auditor.origin.netloc)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout)

    def _run(self) -> None:
        interval = 60.0 / (self.settings.audit_sample * max(1, len(self.hosts)))
        while not self.stop_event.is_set():
            for host in self.hosts:
                url = self._next_url(host)
                if url is not None:
                    try:
                        self.record(self.auditor.check_url(url))
                    except Exception:  # noqa: BLE001 - the sampler must outlive any one page
                        log.exception("continuous audit of %s failed", url)
                if self.stop_event.wait(interval):
                    return

    def _next_url(self, host: str) -> Optional[str]:
        """The next URL of ``host``'s list, reading the list again (from the origin) after a full pass."""
        if not self.lists[host]:
            try:
                urls, notes = audit.discover(self.auditor, f"https://{host}/", self.settings.pagination)
            except Exception:  # noqa: BLE001 - an origin that is down now may be up next minute
                log.exception("continuous audit: cannot list the URLs of %s", host)
                urls, notes = [], []
            for note in notes:
                log.info("continuous audit of %s: %s", host, note)
            if not urls:
                self.stop_event.wait(PASS_PAUSE)
                return None
            self.lists[host] = list(reversed(urls))
        return self.lists[host].pop()

    def record(self, checks: Iterable[audit.Check]) -> None:
        """Count one URL's verdicts, log new stale copies once, and keep the stalest age current."""
        self.checked.inc()
        for check in checks:
            key = (check.node, check.url)
            if check.state is audit.State.STALE:
                self.stale.labels(node=check.node).inc()
                if key not in self.known_stale:
                    log.warning("audit: stale copy of %s on %s (age %ss): %s", check.url, check.node,
                                check.age, check.detail)
                self.known_stale[key] = check.age or 0
            elif check.state is audit.State.ERROR:
                self.errors.labels(node=check.node).inc()
            else:
                self.known_stale.pop(key, None)
        self.stalest.set(max(self.known_stale.values(), default=0))


def start_continuous_audit(settings: Settings, hosts: Iterable[str],
                           registry: CollectorRegistry) -> Optional[ContinuousAudit]:
    """The relay's hook: start the sampler when PURGEBRIDGE_AUDIT_SAMPLE is set; returns it (or None)."""
    if not settings.audit_sample:
        return None
    return ContinuousAudit(settings, hosts, registry).start()

