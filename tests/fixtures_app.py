"""Fixtures for the relay's Flask app, Flask-tutorial style: ``app``, ``client``, ``runner``.

``app`` is built by ``create_app`` with a queue file in ``tmp_path``, two
configured sites, a secret and both tokens, and two nodes that are never
contacted (no worker runs unless a test starts one). ``client`` is its Flask
test client, ``runner`` a click ``CliRunner`` for ``purgebridge.cli:cli``.
The helpers below sign and post events the way the WordPress plugin does.
"""

import json
import time

import pytest

from purgebridge import signing

SECRET = "relay-test-secret-8f2c"
WEBHOOK_TOKEN = "webhook-token-4d1a"
ADMIN_TOKEN = "admin-token-91be"
SITE = "https://blog.example.test"
SITES = "blog.example.test,127.0.0.1:8080"
NODES = "127.0.0.1:9,127.0.0.1:10"


def app_overrides(tmp_path, **extra):
    """The settings every app fixture uses; ``extra`` adds or replaces variables."""
    values = {
        "PURGEBRIDGE_SECRET": SECRET,
        "PURGEBRIDGE_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        "PURGEBRIDGE_ADMIN_TOKEN": ADMIN_TOKEN,
        "PURGEBRIDGE_SITES": SITES,
        "PURGEBRIDGE_NODES": NODES,
        "PURGEBRIDGE_QUEUE": str(tmp_path / "queue.sqlite3"),
        "PURGEBRIDGE_TIMEOUT": "0.5",
    }
    values.update(extra)
    return values


@pytest.fixture
def app(tmp_path):
    from purgebridge.app import create_app

    app = create_app(app_overrides(tmp_path), environ={})
    app.config["TESTING"] = True
    yield app
    app.extensions["purgebridge"].close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner():
    from click.testing import CliRunner

    return CliRunner()


def post_change(post_id=42, site=SITE, **post):
    """One ``post`` change shaped like the plugin sends it (docs/events.md)."""
    body = {"id": post_id, "type": "post", "rest_base": "posts", "status_old": "publish", "status_new": "publish",
            "url_old": f"{site}/2026/11/26/post-{post_id}/", "url_new": f"{site}/2026/11/26/post-{post_id}/",
            "date_old": "2026-11-26", "date_new": "2026-11-26",
            "author": {"id": 1, "url": f"{site}/author/admin/"},
            "terms_old": [], "terms_new": [{"id": 3, "taxonomy": "category", "rest_base": "categories",
                                            "url": f"{site}/category/news/"}],
            "type_archive_url": None}
    body.update(post)
    return {"kind": "post", "action": "update", "post": body}


def event_body(changes=None, site=SITE):
    return {"schema": 1, "site": site + "/", "sent_at": int(time.time()), "changes": changes or [post_change()]}


def signed_headers(body, secret=SECRET, timestamp=None):
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    return {"Content-Type": "application/json", "X-Purgebridge-Timestamp": timestamp,
            "X-Purgebridge-Signature": signing.sign(secret, timestamp, body)}


def encode(body):
    return body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")


def send_event(client, body=None, secret=SECRET, timestamp=None, headers=None):
    """POST a signed event with the Flask test client; returns the response."""
    raw = encode(event_body() if body is None else body)
    sent = signed_headers(raw, secret, timestamp)
    sent.update(headers or {})
    return client.post("/v1/events/wordpress", data=raw, headers=sent)


def bearer(token):
    return {"Authorization": f"Bearer {token}"}
