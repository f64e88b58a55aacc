"""A relay outage on a real WordPress + relay + three varnishd, and the time from
the relay's return until every edited page is fresh on every node.

Shared by tests/test_wp_recovery.py (which asserts the bounds) and
bench/wp_recovery.py (which reports the times side by side), so both measure
the same thing.

The outage, step by step:

1. every edited page is cached (a HIT) on every node;
2. the relay process is stopped;
3. ``edits`` posts are edited as editors do: half through the REST API as the
   block editor saves (PUT /wp-json/wp/v2/posts/<id>, application password),
   half through WordPress's PHP API, each edit its own PHP process;
4. one retry run happens while the relay is down -- its probe really fails,
   which leaves the plugin as it is right after a failed probe: the worst
   moment for the relay to come back, a whole probe interval before the next;
5. the outage's length is simulated: the queue's timestamps move back to
   ``outage`` seconds ago and the failure count to what that many probes
   leave (the plugin keeps no other trace of how long an outage lasted);
6. the relay starts again ("the return");
7. WP-Cron runs only as WordPress runs it by default: spawned by a page view
   that reaches PHP, one every ``page_view_every`` seconds (to the origin
   directly, as an uncached view does);
8. every node is polled for every edited page until each serves the new text.
"""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
import json
import secrets
import threading
import time

import requests

from fixtures_wordpress import HarnessError, served_wordpress
from purgebridge import localcluster

APP_PASSWORD_NAME = "recovery-e2e"


@dataclass
class OutageResult:
    """What one outage cost."""

    outage: int              # simulated outage length, seconds
    real_down: float         # seconds the relay process was really stopped
    fresh_after: float       # seconds from the relay's return to the last page fresh on every node (inf: never)
    pending: int             # batches still queued at the end
    dead: int                # batches refused for good
    recovery: dict           # the plugin's purgebridge_last_recovery summary
    relay_events: int        # event requests the relay accepted after its return (its own /metrics)
    page_views: int          # page views made while waiting


def cron_wordpress(base):
    """served_wordpress with WP-Cron on, as WordPress ships (the harness turns it off for
    determinism), and application passwords allowed over http (local environment)."""
    return served_wordpress(base, extra_config="define('WP_ENVIRONMENT_TYPE', 'local');", before_serve=_enable_wp_cron)


def _enable_wp_cron(site):
    config = site.root / "wp-config.php"
    text = config.read_text()
    if "define('DISABLE_WP_CRON', true);" not in text:
        raise HarnessError("the harness's wp-config.php no longer sets DISABLE_WP_CRON: update recovery_scenario.py")
    config.write_text(text.replace("define('DISABLE_WP_CRON', true);", "define('DISABLE_WP_CRON', false);"))


def php(site, code):
    return site.php("wp_set_current_user(1);\n" + code)


def app_password(site):
    """An application password for the admin, as the block editor's REST saves use."""
    return php(site, """
        $made = WP_Application_Passwords::create_new_application_password(1, array('name' => '%s'));
        if (is_wp_error($made)) { return 'error: ' . $made->get_error_message(); }
        return $made[0];
    """ % APP_PASSWORD_NAME)


def make_posts(site, count):
    """``count`` published posts; returns [(id, path)]."""
    made = php(site, """
        $out = array();
        for ($i = 0; $i < %d; $i++) {
            $id = wp_insert_post(array('post_title' => 'Recovery post ' . $i . ' ' . wp_generate_password(6, false),
                'post_status' => 'publish', 'post_content' => 'first text'));
            $out[] = array($id, wp_make_link_relative(get_permalink($id)));
        }
        return $out;
    """ % count)
    return [(int(post_id), path) for post_id, path in made]


class Outage:
    """Runs outages against one site, cluster and relay (see the module docstring)."""

    def __init__(self, site, cluster, relay, posts, password):
        self.site = site
        self.cluster = cluster
        self.relay = relay
        self.posts = posts
        self.auth = ("admin", password)

    def warm(self):
        paths = [path for _id, path in self.posts]
        self.cluster.warm(paths, self.site.host)
        for node in self.cluster.nodes:
            for path in paths:
                if localcluster.xcache(node, path, self.site.host) != "HIT":
                    assert localcluster.xcache(node, path, self.site.host) == "HIT", f"{path} not cached on {node.name}"

    def rest_edit(self, post_id, text):
        """One save as the block editor makes it."""
        response = requests.put(f"{self.site.url}/wp-json/wp/v2/posts/{post_id}", auth=self.auth, timeout=30,
                                json={"content": text})
        assert response.status_code == 200, response.text[:500]

    def php_edit(self, post_id, text):
        php(self.site, "wp_update_post(array('ID' => %d, 'post_content' => %s)); return true;"
            % (post_id, json.dumps(text).replace("$", "\\$")))

    def edit_all(self, marker):
        for index, (post_id, _path) in enumerate(self.posts):
            text = f"{marker} post {post_id}"
            if index % 2:
                self.rest_edit(post_id, text)
            else:
                self.php_edit(post_id, text)

    def failed_probe_then_age(self, outage):
        """A retry run while the relay is down (its probe fails for real), then the
        outage's length moved into the queue's timestamps and failure count."""
        state = php(self.site, """
            $stats = Purgebridge_Dispatcher::drain();
            global $wpdb;
            $oldest = (int) $wpdb->get_var('SELECT MIN(created_at) FROM ' . Purgebridge_Queue::table());
            $shift = max(0, %d - (time() - $oldest));
            $wpdb->query($wpdb->prepare('UPDATE ' . Purgebridge_Queue::table() . ' SET created_at = created_at - %%d', $shift));
            update_option('purgebridge_relay_failures', max(1, intdiv(%d, Purgebridge_Recovery::interval())));
            // That retry run was WP-Cron's: the every-minute event ran with it and is next due in a minute.
            wp_clear_scheduled_hook(Purgebridge_Plugin::CRON_HOOK);
            wp_schedule_event(time() + 60, Purgebridge_Plugin::CRON_INTERVAL, Purgebridge_Plugin::CRON_HOOK);
            return array('stats' => $stats, 'state' => Purgebridge_Recovery::state());
        """ % (outage, outage))
        assert state["stats"]["probed"] == 1 and state["stats"]["requests"] == 0, state
        assert state["state"]["pending"] == len(self.posts), state
        return state["state"]

    def fresh_everywhere(self, marker, deadline):
        """Polls every node for every page until all show ``marker``; returns the
        monotonic time the last one did, or None at the deadline."""
        waiting = {(node.name, path): node for node in self.cluster.nodes for _id, path in self.posts}
        last = None

        def check(item):
            (_name, path), node = item
            try:
                _status, _headers, body = node.get(path, self.site.host, timeout=10)
            except OSError:
                return item[0], False
            return item[0], marker.encode() in body

        with ThreadPoolExecutor(max_workers=4) as pool:
            while waiting and time.monotonic() < deadline:
                for key, fresh in pool.map(check, list(waiting.items())):
                    if fresh:
                        del waiting[key]
                        last = time.monotonic()
                if waiting:
                    time.sleep(0.5)
        return None if waiting else last

    def page_views(self, every, stop, counter):
        """Uncached page views, one every ``every`` seconds, until ``stop`` is set."""
        while not stop.wait(0 if counter[0] == 0 else every):
            counter[0] += 1
            try:
                self.site.get(f"/?page-view={counter[0]}", timeout=30)
            except requests.RequestException:
                pass
            if counter[0] >= 60:
                return

    def run(self, outage, page_view_every=10.0, limit=120.0):
        """One outage of ``outage`` simulated seconds; returns an OutageResult."""
        marker = "recovered-" + secrets.token_hex(4)
        self.warm()
        self.relay.stop()
        stopped = time.monotonic()
        self.edit_all(marker)
        self.failed_probe_then_age(outage)
        self.relay.start()
        returned = time.monotonic()
        stop = threading.Event()
        counter = [0]
        viewer = threading.Thread(target=self.page_views, args=(page_view_every, stop, counter), daemon=True)
        viewer.start()
        try:
            done = self.fresh_everywhere(marker, returned + limit)
        finally:
            stop.set()
            viewer.join(timeout=40)
        end = php(self.site, "return array(Purgebridge_Recovery::state(), get_option('purgebridge_last_recovery'));")
        return OutageResult(outage=outage, real_down=returned - stopped,
                            fresh_after=float("inf") if done is None else done - returned,
                            pending=end[0]["pending"], dead=end[0]["dead"], recovery=end[1] or {},
                            relay_events=self.accepted_events(), page_views=counter[0])

    def accepted_events(self):
        """WordPress event requests the (restarted) relay answered 202, from its /metrics."""
        text = requests.get(self.relay.url("/metrics"), timeout=10).text
        for line in text.splitlines():
            if line.startswith("purgebridge_events_total{") and 'route="wordpress_event"' in line \
                    and 'result="202"' in line:
                return int(float(line.rsplit(" ", 1)[1]))
        return 0
