"""How much one request, and one tenant, may make the relay send: past the bound, one site purge instead.

Why: one signed event listing 4,000 terms mapped to about 30,000 PURGEs per
node, and nine webhook ``content`` objects of 9,000 collections queued 45,001
rows per node each: any one tenant could flood the Varnish nodes every site
shares, and the relay's own queue with them. Refusing such a request would
leave its pages stale; past the bound the relay sends the site's purge
instead (the ban ``{"kind": "site", "action": "purge_all"}`` sends), which
keeps every page of that site fresh at the cost of a cold cache for it.

The bounds are far above what WordPress produces: an ordinary post update
maps to 20-60 URLs, a post in 100 terms to about 800, a term with its
archive pages and feeds to about 10 (docs/security.md).
"""

from typing import Optional

from purgebridge.core.mapping import Home, Invalidations, site_ban

__all__ = ["MAX_EXPANSION", "MAX_HOST_BATCH", "size", "site_purge", "bounded"]

MAX_EXPANSION = 10_000  # invalidations one request may expand to (the documented limit of items per request)
MAX_HOST_BATCH = 30_000  # invalidations one host may have in one expansion batch of the worker (per tenant)


def size(mapped: Invalidations) -> int:
    """Requests per node ``mapped`` means, before any merge."""
    return 1 if mapped.purge_all else len(mapped.urls) + len(mapped.keys) + len(mapped.bans)


def site_purge(site_url: Optional[str]) -> Invalidations:
    """The purge of a whole site: its ban when it lives under a path of a shared host, else the whole host."""
    ban = site_ban(Home.parse(site_url).path) if site_url else None
    return Invalidations(bans=(ban,)) if ban else Invalidations(purge_all=True)


def bounded(mapped: Invalidations, site_url: Optional[str], limit: int = MAX_EXPANSION) -> Invalidations:
    """``mapped``, or the site's purge when it would mean more than ``limit`` requests per node."""
    return mapped if size(mapped) <= limit else site_purge(site_url)
