"""What the relay says about itself: Prometheus metrics and structured logs, shared by the API and
the worker process. Imports only ``core``.
"""

