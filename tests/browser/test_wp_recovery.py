"""After a relay outage every edited page is fresh within a minute of the relay's return (issue 16).

Real WordPress (WP-Cron enabled, as WordPress ships: spawned by page views),
the real relay, three real varnishd. The outage scenario itself is in
tests/fixtures/recovery_scenario.py, shared with bench/wp_recovery.py.

How long the relay is really down: only as long as the 20 edits and one failed
probe take (about 10 s). The outage's length (3 minutes, 1 hour) is then moved
into the queue's timestamps and failure count -- the only trace an outage
leaves in the plugin, since nothing else (no per-batch backoff, a probe
interval that does not grow) depends on how long it lasted. The relay comes
back right after a failed probe, the worst moment: a whole probe interval
before the next.
"""

import time

import pytest

from fixtures.recovery_scenario import Outage, app_password, cron_wordpress, make_posts, php
from fixtures.wp_relay import php
from fixtures.browser import wp_login
from fixtures.wp_relay import admin_session, php

pytestmark = [pytest.mark.integration, pytest.mark.wordpress]

FRESH_WITHIN = 60.0


@pytest.fixture(scope="module")
def wordpress_site(tmp_path_factory):
    """A served WordPress with WP-Cron on and application passwords allowed over http
    (local environment); test_wp_e2e's ``wp_cluster`` and ``relay`` fixtures use it."""
    with cron_wordpress(tmp_path_factory.mktemp("wordpress-recovery")) as site:
        yield site


@pytest.fixture(scope="module")
def outage(wordpress_site, wp_cluster, relay):
    password = app_password(wordpress_site)
    assert not str(password).startswith("error"), password
    posts = make_posts(wordpress_site, 20)
    relay.drained()
    return Outage(wordpress_site, wp_cluster, relay, posts, password)


@pytest.mark.parametrize("seconds", [180, 3600], ids=["3-minutes", "1-hour"])
def test_every_page_fresh_within_a_minute_of_the_relays_return(outage, relay, seconds):
    result = outage.run(seconds)
    assert result.fresh_after <= FRESH_WITHIN, (
        f"last page fresh {result.fresh_after:.1f} s after the relay's return (outage {seconds} s); {result}\n"
        f"{relay.log()}")
    assert result.pending == 0 and result.dead == 0, f"nothing lost: {result}"
    recovery = result.recovery
    assert recovery.get("batches") == 20, f"every queued batch went out in the recovery: {recovery}"
    assert recovery.get("sends", 99) <= 2, f"no batch sent more than twice: {recovery}"
    assert recovery.get("requests") == 1, f"merged into one request: {recovery}"
    assert result.relay_events == 1, f"the relay itself saw one event request since its return: {result}"
    assert recovery.get("waited", 0) >= seconds, f"the simulated outage was in the queue: {recovery}"


def backlog_while_down(outage, count):
    """Relay down, ``count`` edits queued, one failed probe; then the probe gap passes and
    every WP-Cron event of the plugin is removed, so only the request under test can drain."""
    marker = "drained-" + str(time.monotonic_ns())
    outage.warm()
    outage.relay.stop()
    for post_id, _path in outage.posts[:count]:
        outage.php_edit(post_id, f"{marker} post {post_id}")
    php(outage.site, "Purgebridge_Dispatcher::drain(); return true;")
    php(outage.site, """
        update_option('purgebridge_last_probe', time() - 2 * Purgebridge_Recovery::PROBE_GAP);
        wp_clear_scheduled_hook('purgebridge_drain');
        wp_clear_scheduled_hook('purgebridge_drain_soon');
        return true;
    """)
    outage.relay.start()
    return marker


def restore_cron(site):
    php(site, "Purgebridge_Plugin::activate(); return true;")


def assert_drained(outage, marker, count, within=10.0):
    edited = outage.posts[:count]
    outage_posts, outage.posts = outage.posts, edited
    try:
        done = outage.fresh_everywhere(marker, time.monotonic() + within)
    finally:
        outage.posts = outage_posts
    state = php(outage.site, "return Purgebridge_Recovery::state();")
    assert state["pending"] == 0, state
    assert done is not None, f"not every page fresh within {within} s; {state}"


def test_an_editors_save_after_the_return_drains_the_backlog_without_cron(outage):
    count = 6
    marker = backlog_while_down(outage, count)
    try:
        pending = php(outage.site, "return Purgebridge_Recovery::state()['pending'];")
        assert pending == count
        # The relay is back but still marked down: the save itself is queued without a try,
        # and the retry run after its response probes, finds the relay, and sends everything.
        post_id = outage.posts[count][0]
        outage.rest_edit(post_id, f"{marker} post {post_id}")
        assert_drained(outage, marker, count + 1)
        assert php(outage.site, "return wp_next_scheduled('purgebridge_drain');") is False, "no cron was involved"
    finally:
        restore_cron(outage.site)


def test_heartbeat_drives_the_probe_and_the_drain_while_wp_admin_is_open(outage, browser):
    """An administrator has the dashboard open in a real browser; its Heartbeat tick drains the backlog."""
    count = 4
    wp_login(browser, outage.site)
    browser.get(outage.site.url + "/wp-admin/")
    assert browser.execute_script("return !!(window.wp && wp.heartbeat);"), "wp-admin runs the Heartbeat API"
    browser.execute_script("""
        window.purgebridgeTicks = [];
        jQuery(document).on('heartbeat-tick.purgebridge', function (event, data) {
            window.purgebridgeTicks.push(data.purgebridge || null);
        });
    """)
    marker = backlog_while_down(outage, count)
    try:
        # The next tick, now rather than in up to a minute: heartbeat.js posts to admin-ajax.php as on every tick.
        browser.execute_script("wp.heartbeat.connectNow();")
        deadline = time.monotonic() + 20
        ticks = []
        while not ticks and time.monotonic() < deadline:
            ticks = browser.execute_script("return window.purgebridgeTicks;")
            time.sleep(0.2)
        assert ticks and ticks[0] == {"waiting": True}, f"the tick saw the waiting changes: {ticks}"
        assert_drained(outage, marker, count)
    finally:
        restore_cron(outage.site)


def test_settings_page_says_how_many_changes_wait_and_when_the_next_try_is(outage):
    outage.relay.stop()
    try:
        post_id = outage.posts[0][0]
        outage.php_edit(post_id, "waiting on the settings page")
        session = admin_session(outage.site)
        text = session.get(outage.site.url + "/wp-admin/options-general.php?page=purgebridge", timeout=30).text
        row = text[text.index('id="purgebridge-status-queue"'):]
        row = row[:row.index("</tr>")]
        assert "1 changes (1 batches) wait to be sent to the relay" in row, row
        assert "Next try at" in row and "every 30 seconds" in row, row
        assert "Connection refused" in row or "Connection to" in row, row
    finally:
        outage.relay.start()
    php(outage.site, "Purgebridge_Dispatcher::drain(true); return true;")
    assert php(outage.site, "return Purgebridge_Recovery::state()['pending'];") == 0
