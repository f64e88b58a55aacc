"""The relay's domain, with no dependency on any other part of the package: URLs and hosts, nodes,
invalidations (what one PURGE/BAN/xkey request is), the event models, mapping an event to what went
stale, signing, backoff and the error family. Everything above imports it; it imports nothing above.
"""

