"""The log lines an operator searches for when a node changes state, and when purges are dead-lettered.

Kept apart from the sending code so that the lines (their level, their
message and their fields) are decided in one place: a node going down or
starting to refuse purges is a ``warning``, coming back is a ``warning`` too
(it closes the incident the first one opened), and dead-lettering -- a purge
the relay gives up on -- is an ``error``. Every line carries its facts as
fields (``node``, ``state``, ``down_since``...), which the JSON log format
(``telemetry.logs``) writes as keys, so they can be queried without parsing
prose.
"""

import logging
from typing import Any, Iterable, Optional

log = logging.getLogger("purgebridge.worker")


def log_change(node: str, state: Any, healthy: bool, refusing: bool, now: float, items: int) -> None:
    """Log a transition of ``state`` (a ``NodeState``, before it is updated) and keep its ``down_since``.

    Nothing is logged while a node stays as it was: one line when it goes
    down, one when it comes back, one when it starts or stops refusing.
    """
    was_up: Optional[bool] = state.up
    if not healthy:
        if state.down_since is None:
            state.down_since = now
        if was_up is not False:
            log.warning("node %s is down: %s; its purges are queued and sent when it answers again",
                        node, state.last_error or "no answer",
                        extra={"node": node, "state": "down", "down_since": state.down_since,
                               "error": state.last_error or "no answer", "items": items})
        return
    down_since, state.down_since = state.down_since, None
    if was_up is False:
        log.warning("node %s is back up after %.1f s down", node, max(0.0, now - (down_since or now)),
                    extra={"node": node, "state": "up", "down_since": down_since,
                           "down_seconds": round(max(0.0, now - (down_since or now)), 3)})
    if refusing and not state.refusing:
        log.warning("node %s refuses purges: %s; they are dead-lettered (check its acl)", node,
                    state.last_error, extra={"node": node, "state": "refusing", "error": state.last_error})
    elif state.refusing and not refusing:
        log.warning("node %s accepts purges again", node, extra={"node": node, "state": "up"})


def log_dead_letters(node: str, claims: Iterable[Any], reason: str, outcome: str) -> None:
    """One ``error`` line per dead-lettered group: how many purges ``node`` lost, why, and of which sites."""
    claims = list(claims)
    sites = sorted({str(claim.item.get("host", "")) for claim in claims} - {""})
    log.error("node %s: %d purge(s) dead-lettered (%s); retry with: purgebridge queue retry --node %s",
              node, len(claims), reason, node,
              extra={"node": node, "dead_lettered": len(claims), "reason": reason, "outcome": outcome,
                     "sites": ",".join(sites)})
