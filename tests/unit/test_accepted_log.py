"""One structured log line per accepted event, webhook, admin purge, ban and purge-all."""

import logging

from fixtures.app import ADMIN_TOKEN, SITE, admin, event_body, hook, post_change, send_event


def accepted(caplog):
    return [r for r in caplog.records if r.name == "purgebridge.api" and r.getMessage().startswith("accepted ")]


def test_each_accepted_request_leaves_one_line_with_its_fields(client, caplog):
    caplog.set_level(logging.INFO, logger="purgebridge.api")
    assert send_event(client, event_body([post_change(1), post_change(2)])).status_code == 202
    assert hook(client, {"urls": [f"{SITE}/a/", f"{SITE}/b/"], "keys": ["post-1", "front"],
                         "site": "blog.example.test"}).status_code == 202
    assert admin(client, {"site": "blog.example.test", "ban": "^/category/"}).status_code == 202
    assert admin(client, {"site": "blog.example.test", "purge_all": True}).status_code == 202
    lines = accepted(caplog)
    assert len(lines) == 4, [r.getMessage() for r in caplog.records]
    event, webhook, ban, purge_all = lines
    assert (event.source, event.site, event.changes, event.levelname) == ("wordpress", "blog.example.test", 2, "INFO")
    assert event.event_id and event.event_id in event.getMessage()
    assert (webhook.source, webhook.urls, webhook.keys, webhook.bans, webhook.purge_all) == ("webhook", 2, 2, 0, 0)
    assert (ban.source, ban.bans, ban.purge_all) == ("admin", 1, 0)
    assert (purge_all.source, purge_all.purge_all, purge_all.site) == ("admin", 1, "blog.example.test")
    assert all(ADMIN_TOKEN not in r.getMessage() for r in caplog.records)


def test_refused_requests_leave_no_accepted_line(client, caplog):
    caplog.set_level(logging.INFO, logger="purgebridge.api")
    assert send_event(client, event_body([post_change(1)]), secret="wrong-secret-123").status_code == 401
    assert accepted(caplog) == []
