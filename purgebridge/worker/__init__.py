"""The purge worker process: expands journalled events into invalidations, sends them to every node
and records the outcome. ``worker.status`` is the seam the API process reads.
"""

