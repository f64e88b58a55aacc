"""The ``purgebridge`` command: one click group, one function per sub-command.

Exit codes scripts can trust:

- 0  every node acknowledged every request (purged or not cached)
- 1  something failed or was refused (the output says which node and URL)
- 2  usage or configuration error; nothing was sent

Options that are settings (``--node``, ``--timeout``...) are handed to
``config.load_settings`` as overrides, so the precedence rules live in one
place (config.py), not here.
"""

import contextlib
import functools
import gc
import json
import logging
import os
import sys

import click

from purgebridge import __version__
from purgebridge.config.settings import load_settings, select_group
from purgebridge.store.contract import redact_location
from purgebridge.core.errors import ConfigError, InvalidURL, PurgebridgeError
from purgebridge.core.invalidation import ban_for, keys_for, purge_all_for, purge_for_url
from purgebridge.delivery.fanout import fan_out
from purgebridge.core.urls import split_url

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
PROGRESS_MIN_ITEMS = 200


def _settings(ctx, require_nodes=True, extra=None):
    """Resolve settings once per invocation; config errors exit 2 with one line."""
    try:
        return _resolve_settings(ctx, require_nodes, extra)
    except ConfigError as exc:
        fail_usage(str(exc))


def _resolve_settings(ctx, require_nodes=True, extra=None):
    """Settings from the flags, the env file and the environment; raises ConfigError (``serve`` reloads with it)."""
    opts = ctx.find_root().obj
    overrides = dict(extra or {})
    overrides.update({
        "PURGEBRIDGE_NODES": ",".join(opts["nodes"]) if opts["nodes"] else None,
        "PURGEBRIDGE_VCL": opts["vcl"],
        "PURGEBRIDGE_ACL": opts["acl"],
        "PURGEBRIDGE_TIMEOUT": opts["timeout"],
        "PURGEBRIDGE_RETRIES": opts["retries"],
    })
    settings = load_settings(overrides, dotenv_path=opts["env_file"], require_nodes=require_nodes)
    if opts["group"]:
        settings = settings.replace(nodes=select_group(settings.nodes, opts["group"]))
    return settings


def fail_usage(message):
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_USAGE)


def _emit(report, as_json):
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(report.table())
    sys.exit(EXIT_OK if report.ok else EXIT_FAILED)


def _run(settings, items, as_json):
    """Fan items out with a progress bar on a terminal for long lists."""
    total = len(items) * len(settings.nodes)
    if sys.stderr.isatty() and len(items) >= PROGRESS_MIN_ITEMS:
        with click.progressbar(length=total, label="purging", file=sys.stderr) as bar:
            report = fan_out(settings.nodes, items, settings, progress=bar.update)
    else:
        report = fan_out(settings.nodes, items, settings)
    _emit(report, as_json)


def _read_urls(args):
    urls = []
    for arg in args:
        if arg == "-":
            urls.extend(line.strip() for line in sys.stdin
                        if line.strip() and not line.lstrip().startswith("#"))
        else:
            urls.append(arg)
    return urls


@contextlib.contextmanager
def _without_cycle_collector():
    """Pause the cyclic garbage collector while a (bulk) purge runs.

    A 30,000-URL purge on 3 nodes allocates a few hundred thousand objects
    (requests, answers, results), none of them in a reference cycle; the
    collector's ~340 passes over them took 5 % of the run (4 passes, 3 %,
    with a higher threshold). Reference counting still frees everything as
    usual, and the collector is back on afterwards (tests run the command
    in-process).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="purgebridge")
@click.option("--node", "nodes", multiple=True, metavar="HOST:PORT",
              help="Varnish node (repeatable). Replaces PURGEBRIDGE_NODES.")
@click.option("--vcl", type=click.Path(dir_okay=False), help="Read nodes from this VCL's acl (PURGEBRIDGE_VCL).")
@click.option("--acl", help="Name of the acl in --vcl (PURGEBRIDGE_ACL, default 'purge').")
@click.option("--group", metavar="NAME", help="Only the nodes of this group (from PURGEBRIDGE_NODES_FILE).")
@click.option("--timeout", help="Seconds to wait for a node (PURGEBRIDGE_TIMEOUT).")
@click.option("--retries", help="Extra tries for failed purges (PURGEBRIDGE_RETRIES).")
@click.option("--env-file", type=click.Path(dir_okay=False), help="Read settings from this file instead of ./.env.")
@click.option("-v", "--verbose", count=True, help="Log retries (-v) and debug details (-vv) to stderr.")
@click.pass_context
def cli(ctx, nodes, vcl, acl, group, timeout, retries, env_file, verbose):
    """Purge URLs, bans and surrogate keys on every Varnish node, and run the relay.

    Settings come from defaults, then .env, then the environment, then these
    flags (see docs/configuration.md). Exit status: 0 all acknowledged,
    1 something failed or was refused, 2 usage or configuration error.
    """
    ctx.obj = {"nodes": nodes, "vcl": vcl, "acl": acl, "group": group, "timeout": timeout, "retries": retries,
               "env_file": env_file}
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")


@cli.command()
@click.argument("urls", nargs=-1)
@click.option("--all", "purge_all", is_flag=True, help="Ban everything cached for --host.")
@click.option("--host", help="Site host for --all and --key (host or host:port).")
@click.option("--key", "keys", multiple=True, help="Surrogate key to purge (repeatable; needs xkey in the VCL).")
@click.option("--soft", is_flag=True, help="Soft-purge keys (expire but keep for grace).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON document.")
@click.pass_context
@_without_cycle_collector()
def purge(ctx, urls, purge_all, host, keys, soft, as_json):
    """Purge URLS on every node; '-' reads URLs from stdin, one per line.

    \b
    purgebridge purge https://example.test/ https://example.test/feed/
    purgebridge sitemap-urls example.test | purgebridge purge -
    purgebridge purge --all --host example.test
    purgebridge purge --key post-42 --key front --host example.test
    """
    if (purge_all or keys) and not host:
        fail_usage("--all and --key need --host")
    if not (urls or purge_all or keys):
        fail_usage("give at least one URL, '-' for stdin, --all or --key")
    settings = _settings(ctx)
    try:
        items = [purge_for_url(u, settings.proto_header) for u in _read_urls(urls)]
        if purge_all:
            items.append(purge_all_for(host))
        if keys:
            items.extend(keys_for(host, keys, soft=soft))
    except InvalidURL as exc:
        fail_usage(f"{exc}; nothing was sent")
    if not items:
        fail_usage("no URLs read from stdin; nothing was sent")
    _run(settings, items, as_json)


@cli.command()
@click.argument("regex")
@click.option("--host", required=True, help="Site host whose objects are banned.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON document.")
@click.pass_context
def ban(ctx, regex, host, as_json):
    """Ban every object on --host whose path+query matches REGEX.

    \b
    purgebridge ban --host example.test '^/category/news/'
    """
    settings = _settings(ctx)
    try:
        items = [ban_for(host, regex)]
    except InvalidURL as exc:
        fail_usage(f"{exc}; nothing was sent")
    _run(settings, items, as_json)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON document.")
@click.pass_context
def nodes(ctx, as_json):
    """List every configured node, whether it answers, its latency and whether it has key purges.

    Each node gets a PURGE of a URL nothing caches, so the answer also shows
    whether the node's ACL lets this machine purge, and a PURGEKEYS of a key
    nothing carries: 501 (or 405) means its VCL has no key purges, and the
    relay purges its pages by URL only. Exit 1 if any node is down or refuses.
    """
    from purgebridge.delivery.fanout import key_support

    settings = _settings(ctx)
    probe = purge_for_url("http://purgebridge.invalid/.purgebridge-ping", settings.proto_header)
    key_probe = keys_for("purgebridge.invalid", ["purgebridge-ping"])[0]
    report = fan_out(settings.nodes, [probe, key_probe], settings.replace(retries=0))
    rows = []
    for node_report in report.nodes:
        result, keys_result = node_report.results
        state = {"purged": "up", "not_cached": "up", "refused": "refuses purges"}.get(result.outcome.value, "down")
        keys = key_support(keys_result) if state == "up" else None
        rows.append({"node": node_report.node.name, "group": node_report.node.group, "state": state,
                     "keys": keys, "answer": result.reason,
                     "latency_ms": round(node_report.seconds * 1000, 1)})
    ok = bool(rows) and all(r["state"] == "up" for r in rows)
    if as_json:
        click.echo(json.dumps({"ok": ok, "nodes": rows}, indent=2))
    else:
        width = max([len(r["node"]) for r in rows] + [4])
        gwidth = max([len(r["group"]) for r in rows] + [5])
        click.echo(f"{'node'.ljust(width)}  {'group'.ljust(gwidth)}  {'state':<15} {'keys':<4} {'latency':>9}  answer")
        for r in rows:
            keys = {True: "yes", False: "no"}.get(r["keys"], "?")
            click.echo(f"{r['node'].ljust(width)}  {(r['group'] or '-').ljust(gwidth)}  {r['state']:<15} {keys:<4} "
                       f"{r['latency_ms']:>6.1f} ms  {r['answer']}")
    sys.exit(EXIT_OK if ok else EXIT_FAILED)


@cli.command()
@click.option("--listen", metavar="HOST:PORT", help="Address to listen on (PURGEBRIDGE_LISTEN, default 127.0.0.1:8787).")
@click.option("--queue", "queue_path", metavar="PATH", help="Queue: SQLite file or redis://host:port/db (PURGEBRIDGE_QUEUE).")
@click.option("--insecure", is_flag=True, help="Start without a secret (local play only; events are then refused).")
@click.option("--check", "check_only", is_flag=True,
              help="Check the configuration as serve and its reload do, print one line and exit (0 ok, 2 not).")
@click.pass_context
def serve(ctx, listen, queue_path, insecure, check_only):
    """Run the relay: the HTTP API on granian and the purge worker, as two supervised processes.

    Accepts signed WordPress events, webhooks and admin purges, queues every
    (node, URL) durably and purges it on every node. SIGTERM finishes the
    requests and purges in flight and keeps the rest queued. SIGHUP reads the
    settings again (sites, nodes, tokens, secrets...) and replaces both
    processes; the address and the queue change only with a restart. See
    docs/operations.md.
    """
    from purgebridge.service.server import check_config, serve as run_server

    extra = {"PURGEBRIDGE_LISTEN": listen, "PURGEBRIDGE_QUEUE": queue_path}
    settings = _settings(ctx, require_nodes=True, extra=extra)
    try:
        if check_only:
            click.echo(check_config(settings, insecure=insecure))
            return
        # SIGHUP reads the same sources again: --env-file (or ./.env), the environment, the flags.
        run_server(settings, insecure=insecure, load=functools.partial(_resolve_settings, ctx, True, extra))
    except ConfigError as exc:
        fail_usage(str(exc))


@cli.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print the queue state as JSON.")
@click.option("--queue", "queue_path", metavar="PATH", help="Queue: SQLite file or redis://host:port/db (PURGEBRIDGE_QUEUE).")
@click.pass_context
def queue(ctx, as_json, queue_path):
    """Show the durable queue: depth per node, oldest pending, dead letters.

    Reads the queue file directly, so it works while the relay is stopped.
    """
    if ctx.invoked_subcommand is not None:
        return
    q = _open_queue(ctx, queue_path)
    try:
        stats, dead = _queue_call(q.path, lambda: (q.stats(), q.dead_letters(limit=50)))
    finally:
        q.close()
    if as_json:
        click.echo(json.dumps({"stats": stats, "dead_letters": dead}, indent=2, default=str))
        return
    click.echo(f"queue: {stats['depth']} pending ({stats['in_flight']} in flight), {stats['dead']} dead letter(s), "
               f"oldest pending {_age(stats['oldest_pending_age'])}")
    if stats["nodes"]:
        width = max(len(n) for n in stats["nodes"])
        click.echo(f"{'node'.ljust(width)}  {'pending':>7}  {'in flight':>9}  {'dead':>5}  oldest")
        for name, n in sorted(stats["nodes"].items()):
            click.echo(f"{name.ljust(width)}  {n['pending']:>7}  {n['in_flight']:>9}  {n['dead']:>5}  "
                       f"{_age(n['oldest_pending_age'])}")
    if dead:
        click.echo("\ndead letters (retry with: purgebridge queue retry):")
        for d in dead:
            item = d["item"]
            click.echo(f"  {d['node']}  {item.get('label') or item.get('target')}  ({d['reason']}, {d['attempts']} tries)")


def _age(seconds):
    return "-" if seconds is None else f"{seconds:.1f}s ago"


def _open_queue(ctx, queue_path):
    """The configured queue, existing only: a missing, unreadable or unreachable one is one line, exit 2.

    ``purgebridge queue`` must show the relay's queue, never create an empty
    one in the current directory because PURGEBRIDGE_QUEUE was not set here.
    """
    from purgebridge.store import is_redis, open_queue

    settings = _settings(ctx, require_nodes=False, extra={"PURGEBRIDGE_QUEUE": queue_path})
    if not is_redis(settings.queue) and not os.path.isfile(settings.queue):
        fail_usage(f"PURGEBRIDGE_QUEUE={settings.queue!r}: no queue file there (set PURGEBRIDGE_QUEUE or --queue "
                   "to the relay's queue; purgebridge serve creates it)")
    return _queue_call(settings.queue, lambda: open_queue(settings))


def _queue_call(location, call):
    """Run ``call`` on the queue; any failure (Redis down, not a queue file) becomes one line naming PURGEBRIDGE_QUEUE."""
    try:
        return call()
    except Exception as exc:  # noqa: BLE001 - sqlite3, redis and OS errors alike: one line, no traceback
        fail_usage(f"PURGEBRIDGE_QUEUE={redact_location(location)!r}: cannot use the queue "
                   f"({type(exc).__name__}: {exc})")


@queue.command("retry")
@click.option("--node", "node_name", metavar="HOST:PORT", help="Only this node's dead letters.")
@click.pass_context
def queue_retry(ctx, node_name):
    """Put dead letters back in the queue; a running relay sends them at once."""
    q = _open_queue(ctx, ctx.parent.params.get("queue_path"))
    try:
        count = _queue_call(q.path, lambda: q.retry_dead(node=node_name))
    finally:
        q.close()
    click.echo(f"{count} dead letter(s) queued again")


@cli.command()
@click.option("--url", "base_url", metavar="URL", help="Relay base URL (default: from PURGEBRIDGE_LISTEN).")
@click.option("--json", "as_json", is_flag=True, help="Print the relay's answer as JSON.")
@click.pass_context
def status(ctx, base_url, as_json):
    """Ask the running relay for node state, queue depth and totals (needs PURGEBRIDGE_ADMIN_TOKEN).

    Exit 1 when the relay cannot be reached or any node is down.
    """
    from purgebridge.service.server import fetch_status

    settings = _settings(ctx, require_nodes=False)
    try:
        data = fetch_status(settings, base_url=base_url, timeout=settings.timeout + 3)
    except PurgebridgeError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    nodes_state = data.get("nodes", [])
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        q = data.get("queue", {})
        click.echo(f"queue: {q.get('depth', '?')} pending, {q.get('dead', '?')} dead letter(s), "
                   f"oldest pending {_age(q.get('oldest_pending_age'))}")
        for n in nodes_state:
            latency = n.get("latency_ms")
            click.echo(f"  {n.get('node')}  {'up' if n.get('up') else 'down'}  "
                       f"{'-' if latency is None else f'{latency:.1f} ms'}  {n.get('last_error') or ''}")
    down = [n for n in nodes_state if n.get("up") is False]
    if data.get("queue_writable") is False:
        click.echo("error: the relay's queue does not take writes (full disk?): new events are refused with 503",
                   err=True)
    sys.exit(EXIT_FAILED if down or data.get("queue_writable") is False else EXIT_OK)


@cli.command("sitemap-urls")
@click.argument("site")
@click.option("--sitemap", metavar="URL", help="Start from this sitemap or sitemap index (default: the site's "
                                               "wp-sitemap.xml, else sitemap_index.xml, else sitemap.xml).")
@click.option("--max-urls", type=click.IntRange(1, 10000000), default=100000, show_default=True,
              help="Print at most this many URLs.")
@click.option("--any-host", is_flag=True, help="Also print URLs on other hosts than the site's.")
@click.option("--http-timeout", type=click.FloatRange(0.1, 300), default=10.0, show_default=True,
              help="Seconds to wait for each sitemap.")
def sitemap_urls(site, sitemap, max_urls, any_host, http_timeout):
    """Print the URLs a site's sitemaps list, one a line: for 'purge -' and 'audit -'.

    SITE is a host (https), a home URL or a sitemap's URL. Sitemap indexes
    (WordPress's wp-sitemap.xml, SEO plugins' sitemap_index.xml) are followed.

    \b
    purgebridge sitemap-urls blog.example.test | purgebridge purge -
    purgebridge sitemap-urls http://127.0.0.1:8080/ | purgebridge audit -

    Exit 0 every sitemap read, 1 some could not be (what was found is still printed), 2 usage error.
    """
    from purgebridge.audit.sitemaps import read_sitemaps

    try:
        found = read_sitemaps(site, sitemap=sitemap, max_urls=max_urls, timeout=http_timeout, any_host=any_host)
    except InvalidURL as exc:
        fail_usage(str(exc))
    for url in found.urls:
        click.echo(url)
    for line in found.errors + found.notes:
        click.echo(f"sitemap-urls: {line}", err=True)
    if found.truncated:
        click.echo(f"sitemap-urls: stopped at --max-urls {max_urls}", err=True)
    sys.exit(EXIT_FAILED if found.errors or not found.urls else EXIT_OK)


@cli.command()
@click.argument("urls", nargs=-1)
@click.option("--site", metavar="HOST|URL", help="Check this site: its sitemap plus the listing pages (bare host = https).")
@click.option("--sitemap", "sitemap_only", is_flag=True, help="With --site: only the sitemap's URLs, no listing pages.")
@click.option("--fix", is_flag=True, help="Purge the stale (node, URL) pairs through the normal fan-out, then check again.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON document.")
@click.option("--concurrency", type=click.IntRange(1, 32), default=4, show_default=True, help="URLs checked at once.")
@click.option("--max-urls", type=click.IntRange(1, 1000000), default=1000, show_default=True,
              help="Check at most this many URLs (listing pages first).")
@click.option("--rate", help="URLs per second at most (PURGEBRIDGE_AUDIT_RATE, default 10).")
@click.option("--origin", help="Origin host:port to compare with (PURGEBRIDGE_ORIGIN; default: the VCL's backend).")
@click.option("--ignore", "ignore", multiple=True, metavar="REGEX",
              help="Also ignore matches of REGEX when comparing (repeatable; PURGEBRIDGE_AUDIT_IGNORE_FILE).")
@click.pass_context
def audit(ctx, urls, site, sitemap_only, fix, as_json, concurrency, max_urls, rate, origin, ignore):
    """Compare what every node serves with what the origin serves now: fresh, stale, not cached, error.

    \b
    purgebridge audit https://example.test/ https://example.test/feed/
    purgebridge audit --site example.test --fix
    purgebridge sitemap-urls example.test | purgebridge audit -

    Exit 0 everything fresh (or not cached), 1 something stale or failed, 2 usage or configuration error.
    See docs/audit.md.
    """
    from purgebridge.audit import compare as auditing

    if not (urls or site):
        fail_usage("give URLs, '-' for stdin, or --site HOST")
    if sitemap_only and not site:
        fail_usage("--sitemap needs --site")
    settings = _settings(ctx, extra={"PURGEBRIDGE_AUDIT_RATE": rate, "PURGEBRIDGE_ORIGIN": origin})
    try:
        auditor = auditing.Auditor(settings, auditing.resolve_origin(settings),
                                   auditing.load_patterns(settings.audit_ignore_file, ignore),
                                   concurrency=concurrency)
        targets = _read_urls(urls)
        for url in targets:
            split_url(url)
        notes = []
        if site:
            found, notes = auditing.discover(auditor, site, settings.pagination, sitemap_only)
            targets += found
    except ConfigError as exc:
        fail_usage(str(exc))
    except InvalidURL as exc:
        fail_usage(f"{exc}; nothing was checked")
    targets = list(dict.fromkeys(targets))
    if not targets:
        fail_usage("no URLs to check")
    report = auditing.AuditReport([n.name for n in settings.nodes], notes=notes)
    if len(targets) > max_urls:
        report.notes.append(f"checked the first {max_urls} of {len(targets)} URLs (--max-urls)")
        targets = targets[:max_urls]
    try:
        if sys.stderr.isatty() and not as_json:
            with click.progressbar(length=len(targets), label="auditing", file=sys.stderr) as bar:
                auditor.run(targets, progress=bar.update, report=report)
        else:
            auditor.run(targets, report=report)
        if fix and report.stale():
            auditor.fix(report)
    finally:
        auditor.close()
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else auditing.render_text(report))
    sys.exit(EXIT_OK if report.ok else EXIT_FAILED)


@cli.command()
@click.option("--keep-running", is_flag=True, help="Leave the demo cluster up until Ctrl-C.")
def demo(keep_running):
    """Start an origin and three varnishd nodes on loopback and purge through them."""
    from purgebridge.testing.demo import run_demo

    sys.exit(run_demo(click.echo, keep_running=keep_running))


def main():
    """Console-script entry point: errors we raise on purpose never show a traceback."""
    try:
        cli(standalone_mode=True)
    except PurgebridgeError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    except Exception as exc:  # noqa: BLE001 - a bug still gets one line, not a traceback (-vv logs it)
        logging.getLogger(__name__).debug("unexpected error", exc_info=True)
        click.echo(f"error: {type(exc).__name__}: {exc} (a bug: please report it; -vv shows the traceback)",
                   err=True)
        sys.exit(EXIT_FAILED)
