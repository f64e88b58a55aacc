"""One structured log line per accepted request: what an operator searches when a page stayed stale.

"Did the relay get the change for post 42 of blog.test at 10:42?" is the
first question of every stale-page report, so each accepted signed event,
webhook, admin purge, ban and purge-all leaves one ``info`` line whose
fields (``site``, ``event_id``, ``source``, and the counts) the JSON log
format writes as keys. Refusals have their own, rate-limited line
(``routes.refusal_log``); bodies, secrets and tokens are never logged.
"""

import logging
from typing import Iterable, Optional

log = logging.getLogger("purgebridge.api")


def counts(items: Iterable) -> dict:
    """URLs, surrogate keys, bans and purge-alls among ``items`` (``Invalidation`` objects)."""
    found = {"urls": 0, "keys": 0, "bans": 0, "purge_all": 0}
    for item in items:
        if item.method == "PURGE":
            found["urls"] += 1
        elif item.method == "PURGEKEYS":
            found["keys"] += sum(len(value.split()) for _name, value in item.headers)
        elif item.method == "BAN":
            regex = dict(item.headers).get("X-Ban-Url", "")
            found["purge_all" if regex == "." else "bans"] += 1
    return found


def log_accepted(source: str, site: str, event_id: str, items: Optional[list] = None,
                 changes: Optional[int] = None, nodes: int = 0) -> None:
    """``accepted <source> event <id> for <site>: ...`` with every figure also as a field.

    ``items``: the invalidations of a webhook or admin request (mapped at
    once); ``changes``: the number of changes of a signed WordPress event
    (mapped later by the worker, so its URL and key counts are not known yet).
    """
    fields = {"source": source, "site": site or "-", "event_id": event_id, "nodes": nodes}
    if items is not None:
        found = counts(items)
        fields.update(found)
        what = ", ".join(f"{count} {name.replace('_', '-')}" for name, count in found.items() if count)
    else:
        fields["changes"] = changes or 0
        what = f"{changes or 0} change(s)"
    log.info("accepted %s event %s for %s: %s for %d node(s)", source, event_id, site or "-",
             what or "nothing", nodes, extra=fields)
