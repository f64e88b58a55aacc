"""The API process: the Flask app and its routes, the signed-event path, request intake (bodies,
deadlines, per-client limits), OpenAPI and readiness. It journals accepted events in ``store`` and sees
the worker only through ``worker.status``.
"""

