"""One Varnish node as the worker sees it: its connection, its inbox, its health.

:class:`NodeSender` sends a list of invalidations once (the durable queue
does the retrying) and learns from the answers: whether the node is up (a
node that did not answer is backed off as a whole, exponentially), and
whether it has key purges (PURGEKEYS answered 501, or 405 while PURGE is
allowed: its key purges are skipped from then on, the URL purges of the same
event cover its pages). :class:`NodeState` is what ``/v1/status``, ``/readyz``
and ``purgebridge nodes`` show of it.
"""

from dataclasses import dataclass
import logging
import time
from typing import Any, Callable, Optional, Sequence

from purgebridge.delivery import fanout
from purgebridge.delivery.fanout import Invalidation, Outcome, Result
from purgebridge.worker.inbox import Inbox

log = logging.getLogger(__name__)

OK = frozenset(outcome for outcome in Outcome if outcome.ok)  # a set lookup, not a property call per answer


@dataclass
class NodeState:
    """What the last contact with a node showed; read by /v1/status, /readyz and ``purgebridge nodes``."""

    node: Any
    up: Optional[bool] = None            # None until the first batch
    last_contact: Optional[float] = None  # unix time of the last answer
    latency: Optional[float] = None      # seconds the last batch took
    last_error: str = ""
    last_error_at: Optional[float] = None
    sent: int = 0
    keys: Optional[bool] = None          # key purges: True works, False not in its VCL, None not tried yet

    def to_dict(self) -> dict:
        return {"node": self.node.name, "up": self.up, "last_contact": self.last_contact,
                "latency_ms": None if self.latency is None else round(self.latency * 1000, 2),
                "last_error": self.last_error, "last_error_at": self.last_error_at, "sent": self.sent,
                "keys": self.keys}


class NodeSender:
    """One node: its connection, its inbox and its state, behind one :meth:`send`.

    The inbox is guarded by the worker's bookkeeping lock; ``send`` runs on
    the node's own thread only.
    """

    def __init__(self, node: Any, settings: Any, deliver: Callable[..., list], client: Any = None,
                 window: float = 0.0, clock: Any = time) -> None:
        self.node = node
        self.clock = clock         # time() and monotonic(): the ``time`` module, or a test's FakeClock
        self.settings = settings
        self.deliver = deliver
        self.client = client
        self.state = NodeState(node)
        self.inbox = Inbox(window)
        self.covered = 0           # newest direct batch this node confirmed or requeued entirely
        self.down_until = 0.0
        self.failures = 0
        self.in_flight_since: Optional[float] = None  # oldest first_at of the batch on the wire

    # --- the inbox (under the bookkeeping lock) --------------------------------------

    @property
    def has_direct(self) -> bool:
        """Purges wait in the inbox, or a direct batch is not accounted for yet."""
        return bool(self.inbox.items) or self.inbox.upto > self.covered

    def lag(self, now: float) -> Optional[float]:
        """Seconds the oldest purge held for this node has waited (in the inbox or on the wire)."""
        oldest = [at for at in (self.inbox.oldest, self.in_flight_since) if at is not None]
        return max(0.0, now - min(oldest)) if oldest else None

    def status(self, now: float) -> dict:
        entry = self.state.to_dict()
        lag = self.lag(now)
        entry.update({"inbox": len(self.inbox), "lag_seconds": None if lag is None else round(lag, 4)})
        return entry

    # --- sending (the node's thread) -----------------------------------------------

    def is_down(self, now: Optional[float] = None) -> bool:
        return (self.clock.time() if now is None else now) < self.down_until

    def send(self, items: list, oldest: Optional[float] = None) -> list:
        """Send ``items`` once (no retries: the queue retries); one ``Result`` per item, in order.

        Key purges to a node known to have none are answered ``skipped``
        here without a request. The node's state, its key support and its
        up/down backoff are updated from the answers.
        """
        state = self.state
        skip_keys = state.keys is False
        to_send: Sequence[int]
        if skip_keys:
            to_send = [i for i, item in enumerate(items) if item.method != "PURGEKEYS"]
            results: list = [None if item.method != "PURGEKEYS" else self._skipped(item) for item in items]
        else:
            to_send = range(len(items))
            results = [None] * len(items)
        kwargs: dict = {"retries": 0}
        if self.client is not None:
            kwargs["client"] = self.client
        started = self.clock.monotonic()
        self.in_flight_since = oldest
        try:
            if to_send:
                sent = self.deliver(self.node, items if not skip_keys else [items[i] for i in to_send],
                                    self.settings, **kwargs)
                for i, result in zip(to_send, sent):
                    results[i] = result
        except Exception as exc:  # a bug or an unexpected transport error: the queue retries them
            log.exception("delivering to %s failed", self.node.name)
            reason = f"{type(exc).__name__}: {exc}"
            for i in to_send:
                results[i] = Result(self.node, items[i], Outcome.FAILED, None, reason)
        finally:
            self.in_flight_since = None
        now = self.clock.time()
        # One pass over the answers (a flood sends thousands a second): key support, the last
        # error, and whether anything that went out was answered, and answered well.
        answered = healthy = went_out = False
        last_error = ""
        for i, result in enumerate(results):
            status = result.status
            if status is not None:
                answered = True
                if result.item.method == "PURGEKEYS":
                    result = results[i] = self._learn_keys(result)
            ok = result.outcome in OK
            if not ok and result.reason:
                last_error = result.reason
            # Rows that could not even be encoded say nothing about the node: only what went out counts.
            if result.permanent or (skip_keys and result.item.method == "PURGEKEYS"):
                continue
            went_out = True
            # Healthy: at least one answer that is not a retryable failure. A node that answers
            # every purge with 5xx/408/429 is not "up": it is backed off like a silent one.
            if not healthy and status is not None and (ok or not fanout.classify(status)[1]):
                healthy = True
        if last_error:
            state.last_error, state.last_error_at = last_error, now
        state.sent += len(to_send)
        state.latency = self.clock.monotonic() - started
        if went_out:
            state.up = healthy
            if answered:
                state.last_contact = now
            if healthy:
                self.failures, self.down_until = 0, 0.0
                if not last_error:  # recovered: the old error does not stay next to "up"
                    state.last_error, state.last_error_at = "", None
            else:
                self.failures += 1
                self.down_until = now + fanout.backoff_delay(self.failures, self.settings.backoff,
                                                             self.settings.backoff_max)
        return results

    def _skipped(self, item: Invalidation) -> Result:
        return Result(self.node, item, Outcome.SKIPPED, None, "node has no key purges (URLs purged instead)")

    def _learn_keys(self, result: Result) -> Result:
        """A PURGEKEYS answer tells whether the node has key purges; a 501/405 is not a failure."""
        supported = fanout.key_support(result)
        if supported is False:
            if self.state.keys is not False:
                log.warning("node %s answered PURGEKEYS with %s: it has no key purges (no xkey in its VCL); "
                            "its pages are purged by URL only from now on", self.node.name, result.reason)
            self.state.keys = False
            return self._skipped(result.item)
        if supported:
            if self.state.keys is False:
                log.info("node %s accepts key purges again", self.node.name)
            self.state.keys = True
        return result

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
