"""Browser-measured editor cost: what the plugin adds to clicking "Update" until "Post updated".

One run, side by side, on one real WordPress (private MariaDB, Debian's
WordPress served by php -S, the plugin from this repository) and one headless
Chromium logged in as the admin, the block editor open on one post:

- ``baseline``    plugin inactive
- ``relay up``    plugin active, the real relay (python -m purgebridge serve) in
                  front of one varnishd, answering 202
- ``relay down``  plugin active, nothing listening on the relay port
- ``blackholed``  plugin active, a socket that accepts and never answers (the
                  plugin's 0.5 s editor timeout applies)

Each sample is one click as an editor makes it: the title is retyped (not
timed), then Update is clicked and the time from the click event to the
"Post updated" snackbar is taken in the page (tests/fixtures/block_editor.py). It
holds the block editor's REST save, WordPress's work, and -- php -S has no
fastcgi_finish_request() -- the plugin's whole end-of-request send, so this is
the editor's worst case; under PHP-FPM the send happens after the response.

The scenarios are interleaved in short rounds, each round starting with the
next scenario, and judged *paired*: per round, a scenario's median over the
baseline's median of the same round; the median of those ratios over the
rounds is the result (the shared machine's load comes in bursts, which this
keeps from deciding it). The relay is started for its scenario and given 2 s
to settle. At the start of each scenario in each round the plugin's delivery
state is reset (empty retry queue, relay not marked down) and the post's
revisions are deleted, so every scenario saves the same post with the same
history; ``--warmup`` clicks are then made and discarded, and the delivery
state is reset again. While the relay is down or blackholed, the first failed
send marks it down for 30 s and the saves after it are queued without touching
the network: the first timed click of each round pays one failure (for
blackholed, the 0.5 s editor timeout: visible in ``max`` and the mean).

    python bench/editor_click.py [--clicks 4] [--rounds 16] [--warmup 1] [--write]

Needs php, mariadb-server, wordpress, varnish, chromium and chromium-driver,
like the tests. Targets (issue 11): relay up <= 5 % over baseline, relay down
<= 10 %.
"""

import argparse
import json
from pathlib import Path
import secrets
import shutil
import statistics
import sys
import tempfile
import time

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fixtures import wordpress as harness  # noqa: E402
from fixtures.block_editor import click_update, open_editor, retype_title  # noqa: E402
from common import machine, watchdog, write_section  # noqa: E402
from fixtures.browser import start_browser, wp_login  # noqa: E402
from purgebridge.testing import cluster as localcluster  # noqa: E402
from wp_editor import Blackhole, Relay, _Backend, set_active, summarize  # noqa: E402

SCENARIOS = ("baseline", "relay up", "relay down", "blackholed")
TARGETS = {"relay up": 5.0, "relay down": 10.0}  # percent over the baseline median
# The relay is started for its scenario of each round (the others need its port free);
# its start-up work (imports, worker threads) would otherwise land on the first clicks.
RELAY_SETTLE = 2.0

RESET = """
    global $wpdb;
    $wpdb->query("DELETE FROM {$wpdb->posts} WHERE post_type = 'revision' AND post_parent = %d");
    if (class_exists('Purgebridge_Queue') && is_plugin_active('purgebridge/purgebridge.php')) {
        $wpdb->query('TRUNCATE TABLE ' . Purgebridge_Queue::table());
        update_option('purgebridge_relay_down_until', 0);
        update_option('purgebridge_relay_failures', 0);
    }
    wp_cache_flush();
    return true;
"""

QUEUED = "return class_exists('Purgebridge_Queue') ? Purgebridge_Queue::count('pending') : 0;"


def run(clicks, rounds, warmup):
    work = Path(tempfile.mkdtemp(prefix="purgebridge-bench-click-"))
    relay_port = harness.free_port()
    # No autosaves: they are not what is measured, and one running disables Update for a moment.
    site = harness.build_wordpress(work / "wp", f"http://127.0.0.1:{relay_port}", "bench-" + secrets.token_hex(12),
                                   extra_config="define('AUTOSAVE_INTERVAL', 86400);")
    cluster = driver = None
    samples = {name: [] for name in SCENARIOS}
    by_round = []  # per round: scenario -> its clicks in that round
    try:
        site.serve()
        post_id = site.php("""
            return wp_insert_post(array('post_title' => 'Clicked story', 'post_status' => 'publish',
                'post_category' => array(1), 'tags_input' => array('bench'),
                'post_content' => '<!-- wp:paragraph --><p>A paragraph to save.</p><!-- /wp:paragraph -->'));
        """)
        cluster = localcluster.start_cluster(REPO / "vcl" / "wordpress.vcl", hosts=("127.0.0.11",),
                                             origin=_Backend(site.port), workdir=work / "cluster")
        driver = start_browser(work / "chromium")
        wp_login(driver, site)
        open_editor(driver, site, post_id)
        for round_no in range(rounds):
            # Each round starts with the next scenario, so no scenario always follows the same one.
            by_round.append({name: [] for name in SCENARIOS})
            for name in SCENARIOS[round_no % len(SCENARIOS):] + SCENARIOS[:round_no % len(SCENARIOS)]:
                relay = blackhole = None
                set_active(site, name != "baseline")
                site.php(RESET % post_id)
                if name == "relay up":
                    relay = Relay(work, site, cluster)
                    time.sleep(RELAY_SETTLE)
                elif name == "blackholed":
                    blackhole = Blackhole(relay_port)
                try:
                    for n in range(warmup + clicks):
                        if n == warmup:
                            site.php(RESET % post_id)  # the timed clicks start alike: a down relay's failure is timed
                        retype_title(driver, f"Clicked story {round_no}.{name}.{n}")
                        ms = click_update(driver)
                        if n >= warmup:
                            samples[name].append(ms)
                            by_round[-1][name].append(ms)
                finally:
                    if relay:
                        relay.stop()
                    if blackhole:
                        blackhole.close()
                queued = site.php(QUEUED) if name != "baseline" else 0
                expected = 0 if name in ("baseline", "relay up") else clicks
                if queued != expected:
                    raise SystemExit(f"{name}: {queued} batches in the retry queue, expected {expected}")
    finally:
        if driver:
            driver.quit()
        if cluster:
            cluster.stop()
        site.stop()
        shutil.rmtree(work, ignore_errors=True)  # a WordPress copy, its database and a browser profile
    results = {name: summarize(times) for name, times in samples.items()}
    for name in SCENARIOS:
        results[name]["paired"] = paired_over(by_round, name)
    return results, samples


def paired_over(by_round, name):
    """Median over rounds of (this scenario's median / the baseline's median in the same round) - 1, in %.

    The machine's load comes in bursts lasting seconds to minutes; comparing
    within a round, then taking the median across rounds, keeps a burst that
    hit one scenario's clicks from deciding the result.
    """
    ratios = [statistics.median(r[name]) / statistics.median(r["baseline"]) for r in by_round]
    return (statistics.median(ratios) - 1.0) * 100.0


def over(result, base, key):
    return (result[key] / base[key] - 1.0) * 100.0


def table(results):
    base = results["baseline"]
    lines = ["| scenario | clicks | p50 ms | p95 ms | mean ms | max ms | p50 over baseline | mean over baseline | "
             "paired: median of per-round p50 ratios |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['n']} | {r['p50']:.1f} | {r['p95']:.1f} | {r['mean']:.1f} | {r['max']:.1f} | "
                     f"{over(r, base, 'p50'):+.1f} % | {over(r, base, 'mean'):+.1f} % | {r['paired']:+.1f} % |")
    return "\n".join(lines)


def verdicts(results):
    base = results["baseline"]
    found = []
    for name, target in TARGETS.items():
        paired = results[name]["paired"]
        found.append(f"- {name}: {paired:+.1f} % paired (target <= {target:.0f} %: "
                     f"{'met' if paired <= target else 'NOT met'}); {over(results[name], base, 'p50'):+.1f} % on the "
                     f"pooled median, {over(results[name], base, 'mean'):+.1f} % on the mean")
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=4, help="timed clicks per scenario per round")
    parser.add_argument("--rounds", type=int, default=16, help="interleaved rounds")
    parser.add_argument("--warmup", type=int, default=1, help="untimed clicks per scenario and round")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    if not 1 <= args.clicks <= 100 or not 1 <= args.rounds <= 20 or not 0 <= args.warmup <= 5:
        parser.error("--clicks 1..100, --rounds 1..20, --warmup 0..5")
    watchdog(3600)
    started = time.time()
    results, samples = run(args.clicks, args.rounds, args.warmup)
    elapsed = time.time() - started
    print(table(results))
    print("\n".join(verdicts(results)))
    print(f"\n{args.rounds} rounds x {args.clicks} clicks per scenario ({args.warmup} warm-up click(s) discarded per "
          f"scenario and round), {elapsed:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": results, "samples": samples}, indent=2))
    if args.write:
        write_section("editor_click", "\n".join([
            "## Click to \"Post updated\" in a real browser (`bench/editor_click.py`)", "",
            "Headless Chromium (Debian's) logged in to a real WordPress (Debian's package, MariaDB, php -S), the "
            "block editor open on one post: the title is retyped, Update clicked, and the time from the click "
            "event to the \"Post updated\" snackbar taken in the page. Plugin inactive (baseline), active with the "
            "relay up (real relay, one varnishd), down (nothing listening) and blackholed (accepts, never "
            f"answers); {args.rounds} interleaved rounds x {args.clicks} timed clicks per scenario "
            f"({args.warmup} untimed per scenario and round, after resetting the retry queue, the relay's down "
            f"mark and the post's revisions), one run, {elapsed:.0f} s. Machine: {machine()}.", "",
            table(results), "", *verdicts(results), "",
            "Paired: per round, the scenario's median click over the baseline's median click of the same round; the "
            "median of those ratios across rounds. The machine is shared by several busy users: load bursts make "
            "the pooled figures swing by tens of percent either way, the paired one much less. The plugin's own "
            "work per save is a few milliseconds (`bench/wp_editor.py`) against clicks of 150-250 ms.", "",
            "php -S has no fastcgi_finish_request(), so every click here waits for the plugin's whole send; under "
            "PHP-FPM the editor gets its answer before the send. Down and blackholed: the first failed send of a "
            "round (timed: the warm-up's failure is reset) marks the relay down for 30 s and later saves are queued "
            "without touching the network; the blackholed round's first timed click waits out the 0.5 s editor "
            "timeout: its max, and with 4 timed clicks a round about 125 ms of its mean, where in use it is one click "
            "in 30 s or more.",
        ]))


if __name__ == "__main__":
    main()
