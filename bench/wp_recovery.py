"""Time from the relay's return to the last edited page fresh on every node, after outages of 1, 5 and 60 minutes.

One run, side by side, on one real WordPress (Debian's package, MariaDB,
php -S, WP-Cron on as WordPress ships it), the real relay and three varnishd.
Each outage is the scenario of tests/fixtures/recovery_scenario.py, the same one
tests/browser/test_wp_recovery.py asserts on: 20 edits while the relay is stopped
(half REST saves as the block editor makes them, half PHP API), one retry run
whose probe really fails, the outage's length moved into the queue's
timestamps and failure count (simulated: waiting an hour is not a benchmark),
the relay started again right after that failed probe -- the worst moment, a
whole probe interval before the next -- and WP-Cron driven only by one
uncached page view every 10 s. The outages are interleaved in rounds.

    python bench/wp_recovery.py [--rounds 2] [--write]

Needs php, mariadb-server, wordpress and varnish, like the tests.
"""

import argparse
from pathlib import Path
import statistics
import sys
import tempfile
import time

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from fixtures.recovery_scenario import Outage, app_password, cron_wordpress, make_posts  # noqa: E402
from fixtures.wordpress import wordpress_cluster  # noqa: E402
from test_wp_e2e import WordPressRelay  # noqa: E402

OUTAGES = (60, 300, 3600)


def run(rounds):
    work = Path(tempfile.mkdtemp(prefix="purgebridge-bench-recovery-"))
    results = {outage: [] for outage in OUTAGES}
    with cron_wordpress(work / "wp") as site, wordpress_cluster(site.port, work / "cluster") as cluster:
        relay = WordPressRelay(work, site, cluster)
        relay.start()
        try:
            scenario = Outage(site, cluster, relay, make_posts(site, 20), app_password(site))
            relay.drained()
            for _ in range(rounds):
                for outage in OUTAGES:
                    result = scenario.run(outage)
                    print(f"outage {outage // 60:>2} min: fresh after {result.fresh_after:.1f} s, "
                          f"{result.recovery}", flush=True)
                    results[outage].append(result)
        finally:
            relay.stop()
    return results


def table(results):
    base = statistics.mean(r.fresh_after for r in results[OUTAGES[0]])
    lines = ["| outage (simulated) | runs | relay really down (s) | return → last page fresh, mean (s) | max (s) | "
             "vs 1 min | requests per recovery | most sends of one batch | lost |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for outage, runs in results.items():
        fresh = [r.fresh_after for r in runs]
        lines.append(
            f"| {outage // 60} min | {len(runs)} | {statistics.mean(r.real_down for r in runs):.1f} | "
            f"{statistics.mean(fresh):.1f} | {max(fresh):.1f} | {statistics.mean(fresh) / base:.2f} | "
            f"{max(r.recovery.get('requests', 0) for r in runs)} | {max(r.recovery.get('sends', 0) for r in runs)} | "
            f"{sum(r.pending + r.dead for r in runs)} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of the three outages (1..5)")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    if not 1 <= args.rounds <= 5:
        parser.error("--rounds 1..5")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import machine, watchdog, write_section

    watchdog(600 + 300 * args.rounds)
    started = time.time()
    results = run(args.rounds)
    text = table(results)
    print(text)
    print(f"\n{args.rounds} round(s), {time.time() - started:.0f} s")
    if args.write:
        write_section("wp_recovery", "\n".join([
            "## Recovery after a relay outage (`bench/wp_recovery.py`)", "",
            "Seconds from the relay's return until every one of 20 edited posts is fresh on all three varnishd "
            "nodes, for outages of 1, 5 and 60 minutes (simulated in the plugin's queue; the relay was really "
            "down only for the edits and one failed probe). The relay comes back just after a failed probe, the "
            "worst moment; WP-Cron runs only when one uncached page view every 10 s reaches PHP. "
            f"{args.rounds} interleaved round(s), one run. Machine: {machine()}.", "",
            text, "",
            "The time does not grow with the outage: there is no per-batch backoff, the probe interval stays "
            "30 s, and everything queued goes out in one merged request. The bound is the probe interval "
            "(30 s) + the gap between page views (10 s) + the purge itself; see docs/wordpress.md, "
            "\"After a relay outage\".",
        ]))


if __name__ == "__main__":
    main()
