"""Cache audit: URLs checked per second and the load it puts on the origin.

One run on one real WordPress (Debian's package, MariaDB, php -S with 4
workers, Twenty Twenty-Three) with ``--posts`` posts spread over categories
and tags, behind three real varnishd. ``purgebridge audit --site`` (the real
command, as a subprocess) is run, side by side:

- ``cold``      every node empty: each URL is one origin request from the audit
                plus one MISS per node
- ``warm``      the same site again: every copy cached
- ``warm, paced`` the default rate (PURGEBRIDGE_AUDIT_RATE=10), on the first
                ``--paced-urls`` URLs: what a production run costs per second

Origin load is counted at the origin: the connections php -S accepted
(php -S closes each after one request), so the audit's own requests, the
nodes' MISS fetches and the discovery requests all count.

    python bench/audit.py [--posts 480] [--concurrency 4] [--paced-urls 100]
"""

import argparse
import json
import os
from pathlib import Path
import secrets
import subprocess
import sys
import tempfile
import time

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from common import machine, watchdog, write_section  # noqa: E402
from fixtures.wordpress import build_wordpress, free_port  # noqa: E402
from purgebridge.testing import cluster as localcluster  # noqa: E402


class Backend:
    def __init__(self, port):
        self.host, self.port = "127.0.0.1", port

    def stop(self):
        pass


def origin_requests(site):
    return (site.base / "php-server.log").read_text(errors="replace").count(" Accepted")


def run_audit(site, cluster, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PURGEBRIDGE_")}
    env.update(PURGEBRIDGE_NODES=cluster.nodes_env(), PURGEBRIDGE_ORIGIN=site.host, PURGEBRIDGE_TIMEOUT="10",
               PYTHONPATH=str(REPO))
    before = origin_requests(site)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "purgebridge", "audit", "--json", *args], capture_output=True,
                          text=True, env=env, timeout=1200, cwd=REPO)
    seconds = time.monotonic() - started
    if proc.returncode not in (0, 1):
        raise SystemExit(f"audit failed: {proc.stderr}")
    report = json.loads(proc.stdout)
    load = origin_requests(site) - before
    states = {}
    for check in report["checks"]:
        states[check["state"]] = states.get(check["state"], 0) + 1
    return {"urls": report["urls"], "seconds": seconds, "audit_seconds": report["seconds"],
            "urls_per_s": report["urls"] / report["seconds"], "origin": load, "origin_per_s": load / seconds,
            "origin_per_url": load / report["urls"], "states": states, "exit": proc.returncode}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=480)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--paced-urls", type=int, default=100)
    args = parser.parse_args()
    watchdog(1800)
    base = Path(tempfile.mkdtemp(prefix="purgebridge-bench-audit-"))
    site = build_wordpress(base / "wp", f"http://127.0.0.1:{free_port()}", secrets.token_hex(16), activate=False)
    try:
        site.serve()
        site.php("""
            wp_set_current_user(1);
            $cats = array(); $tags = array();
            for ($i = 0; $i < 12; $i++) { $t = wp_insert_term("Topic $i", 'category'); $cats[] = $t['term_id']; }
            for ($i = 0; $i < 20; $i++) { $tags[] = "tag-$i"; }
            wp_defer_term_counting(true);
            for ($i = 0; $i < %d; $i++) {
                $when = gmdate('Y-m-d H:i:s', time() - 3600 * ($i + 1));
                wp_insert_post(array('post_title' => "Bench post $i", 'post_status' => 'publish',
                    'post_content' => "<!-- wp:paragraph --><p>Body of post $i</p><!-- /wp:paragraph -->",
                    'post_category' => array($cats[$i %% 12]), 'tags_input' => array($tags[$i %% 20]),
                    'post_date' => get_date_from_gmt($when), 'post_date_gmt' => $when));
            }
            wp_defer_term_counting(false);
            return true;
        """ % args.posts, timeout=600)
        with localcluster.start_cluster(REPO / "vcl" / "wordpress.vcl", origin=Backend(site.port),
                                        workdir=base / "cluster") as cluster:
            common = ["--site", site.url, "--concurrency", str(args.concurrency), "--max-urls", "5000"]
            cold = run_audit(site, cluster, *common, "--rate", "1000")
            warm = run_audit(site, cluster, *common, "--rate", "1000")
            paced = run_audit(site, cluster, *common, "--max-urls", str(args.paced_urls))
    finally:
        site.stop()
    rows = [("cold (rate unlimited)", cold), ("warm (rate unlimited)", warm),
            (f"warm, default rate 10/s (first {args.paced_urls} URLs)", paced)]
    lines = ["## Cache audit (`bench/audit.py`)", "",
             f"`purgebridge audit --site` (the real command) on a real WordPress (Debian's package, MariaDB, "
             f"php -S with 4 workers, Twenty Twenty-Three) with {args.posts} posts in 12 categories and 20 tags, "
             f"behind 3 varnishd, --concurrency {args.concurrency}, one run. Origin load is counted at the "
             f"origin (connections php -S accepted: the audit's own requests, the nodes' MISS fetches and "
             f"the discovery requests). Machine: {machine()}.", "",
             "| run | URLs | seconds | URLs/s | origin requests | origin req/s | origin req per URL | verdicts |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for name, r in rows:
        verdicts = ", ".join(f"{k} {v}" for k, v in sorted(r["states"].items()))
        lines.append(f"| {name} | {r['urls']} | {r['seconds']:.1f} | {r['urls_per_s']:.1f} | {r['origin']} | "
                     f"{r['origin_per_s']:.1f} | {r['origin_per_url']:.2f} | {verdicts} |")
    lines += ["", f"- warm over cold: {warm['urls_per_s'] / cold['urls_per_s']:.1f}x the URLs per second, "
              f"{warm['origin_per_url'] / cold['origin_per_url']:.2f}x the origin requests per URL",
              f"- paced: {paced['urls_per_s']:.1f} URLs/s against the 10/s limit, "
              f"{paced['origin_per_s']:.1f} origin requests/s",
              "", "Every URL checked costs one origin request; a cold node adds its MISS. URLs/s is bounded by "
              "the origin (php -S renders an uncached WordPress page in tens of ms on this machine); "
              "'seconds' includes the command's start and the site's discovery (sitemaps, REST)."]
    text = "\n".join(lines)
    print(text)
    write_section("audit", text)


if __name__ == "__main__":
    main()
