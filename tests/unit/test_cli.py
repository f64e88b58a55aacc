"""CLI: exit codes, table and JSON output, stdin, usage errors -- against local fault servers."""

import json

from click.testing import CliRunner
import pytest

from purgebridge import __version__
from purgebridge.cli.commands import cli


@pytest.fixture
def nodes(fault_server):
    """``nodes(script, ...)`` -> (["127.0.0.1:port", ...], [FaultServer, ...])."""
    def make(*scripts):
        started = [fault_server(script) for script in scripts]
        return [f"127.0.0.1:{s.port}" for s in started], started
    return make


def run(args, input=None):
    runner = CliRunner()
    return runner.invoke(cli, ["--retries", "1", "--timeout", "0.5"] + args, input=input,
                         env={"PURGEBRIDGE_NODES": "", "PURGEBRIDGE_VCL": ""})


def node_args(addrs):
    return [a for addr in addrs for a in ("--node", addr)]


def test_version_and_help():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output
    for command in ([], ["purge"], ["ban"], ["nodes"]):
        result = CliRunner().invoke(cli, command + ["--help"])
        assert result.exit_code == 0 and "Usage:" in result.output


def test_purge_all_acknowledged_exit_0(nodes):
    addrs, servers = nodes(lambda n, l: ("status", 200), lambda n, l: ("status", 404))
    result = run(node_args(addrs) + ["purge", "http://example.test/a", "http://example.test/b"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["node", "purged", "not", "cached", "failed", "refused", "time"]
    assert lines[1].split()[:5] == [addrs[0], "2", "0", "0", "0"]
    assert lines[2].split()[:5] == [addrs[1], "0", "2", "0", "0"]
    assert servers[0].requests[0].startswith("PURGE /a HTTP/1.1\r\nHost: example.test")


def test_failure_and_refusal_exit_1_and_name_node(nodes):
    addrs, _ = nodes(lambda n, l: ("status", 500), lambda n, l: ("status", 405))
    result = run(node_args(addrs) + ["purge", "http://example.test/a"])
    assert result.exit_code == 1
    assert f"{addrs[0]}  failed" in result.output and "HTTP 500" in result.output
    assert f"{addrs[1]}  refused" in result.output


def test_json_output(nodes):
    addrs, _ = nodes(lambda n, l: ("status", 200), lambda n, l: ("status", 503))
    result = run(node_args(addrs) + ["purge", "--json", "http://example.test/a"])
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["ok"] is False
    assert [n["node"] for n in data["nodes"]] == addrs
    assert data["nodes"][0]["purged"] == 1 and data["nodes"][1]["failed"] == 1
    assert data["problems"][0]["item"] == "http://example.test/a"
    assert data["problems"][0]["attempts"] == 2


def test_stdin_urls(nodes):
    addrs, servers = nodes(lambda n, l: ("status", 200))
    result = run(node_args(addrs) + ["purge", "--json", "-"], input="http://e.test/1\n\n# comment\nhttp://e.test/2\n")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["nodes"][0]["purged"] == 2
    assert servers[0].count == 2


def test_invalid_url_exit_2_nothing_sent(nodes):
    addrs, servers = nodes(lambda n, l: ("status", 200))
    result = run(node_args(addrs) + ["purge", "http://e.test/ok", "http://e.test/a\r\nX: y"])
    assert result.exit_code == 2
    assert "CR or LF" in result.output and "nothing was sent" in result.output
    assert servers[0].count == 0


def test_config_error_exit_2_one_line():
    result = CliRunner().invoke(cli, ["--timeout", "soon", "--node", "127.0.0.1:1", "purge", "http://e.test/"])
    assert result.exit_code == 2
    assert result.output.strip() == "error: PURGEBRIDGE_TIMEOUT='soon': expected a number of seconds, e.g. 2 or 0.5"


def test_no_nodes_exit_2():
    result = run(["purge", "http://e.test/"])
    assert result.exit_code == 2 and "no Varnish nodes configured" in result.output


def test_usage_errors_exit_2(nodes):
    addrs, _ = nodes(lambda n, l: ("status", 200))
    assert run(node_args(addrs) + ["purge"]).exit_code == 2
    assert run(node_args(addrs) + ["purge", "--all"]).exit_code == 2
    assert run(node_args(addrs) + ["ban", "--host", "e.test", "(bad"]).exit_code == 2
    assert run(node_args(addrs) + ["bogus-command"]).exit_code == 2


def test_ban_and_keys_requests(nodes):
    addrs, servers = nodes(lambda n, l: ("status", 200))
    assert run(node_args(addrs) + ["ban", "--host", "e.test", "^/category/"]).exit_code == 0
    assert run(node_args(addrs) + ["purge", "--all", "--host", "e.test:8080"]).exit_code == 0
    assert run(node_args(addrs) + ["purge", "--host", "e.test", "--key", "post-1", "--key", "front"]).exit_code == 0
    reqs = servers[0].requests
    assert reqs[0].startswith("BAN / HTTP/1.1\r\nHost: e.test\r\n") and "X-Ban-Url: ^/category/" in reqs[0]
    assert "Host: e.test:8080" in reqs[1] and "X-Ban-Url: ." in reqs[1]
    assert reqs[2].startswith("PURGEKEYS / HTTP/1.1") and "xkey-purge: post-1 front" in reqs[2]


def test_nodes_command(nodes):
    addrs, _ = nodes(lambda n, l: ("status", 200), lambda n, l: ("status", 405))
    result = run(node_args(addrs) + ["nodes", "--json"])
    assert result.exit_code == 1
    states = {r["node"]: (r["state"], r["keys"]) for r in json.loads(result.output)["nodes"]}
    assert states == {addrs[0]: ("up", True), addrs[1]: ("refuses purges", None)}
    up_only = run(node_args(addrs[:1]) + ["nodes"])
    assert up_only.exit_code == 0 and "up" in up_only.output


def test_group_targets_only_that_group(nodes, tmp_path):
    addrs, servers = nodes(lambda n, l: ("status", 200), lambda n, l: ("status", 200))
    groups = tmp_path / "nodes.json"
    groups.write_text(json.dumps({"groups": {"fra": [addrs[0]], "ams": [addrs[1]]}}))
    runner = CliRunner()
    env = {"PURGEBRIDGE_NODES": "", "PURGEBRIDGE_VCL": "", "PURGEBRIDGE_NODES_FILE": str(groups)}
    result = runner.invoke(cli, ["--group", "ams", "purge", "--json", "http://e.test/x"], env=env)
    assert result.exit_code == 0, result.output
    assert [n["node"] for n in json.loads(result.output)["nodes"]] == [addrs[1]]
    assert servers[0].count == 0 and servers[1].count == 1
    listing = runner.invoke(cli, ["nodes", "--json"], env=env)
    assert {(r["node"], r["group"]) for r in json.loads(listing.output)["nodes"]} == {(addrs[0], "fra"), (addrs[1], "ams")}
    unknown = runner.invoke(cli, ["--group", "nyc", "nodes"], env=env)
    assert unknown.exit_code == 2 and "groups: ams, fra" in unknown.output


def test_purge_pauses_the_cycle_collector_while_it_runs_and_restores_it(nodes, monkeypatch):
    import gc
    from purgebridge.cli import commands as cli_module

    seen = []
    real_fan_out = cli_module.fan_out

    def recording_fan_out(*args, **kwargs):
        seen.append(gc.isenabled())
        return real_fan_out(*args, **kwargs)

    monkeypatch.setattr(cli_module, "fan_out", recording_fan_out)
    assert gc.isenabled()
    addrs, _ = nodes(lambda n, l: ("status", 200))
    result = run(node_args(addrs) + ["purge", "-"], input="http://example.test/a\nhttp://example.test/b\n")
    assert result.exit_code == 0, result.output
    assert seen == [False]
    assert gc.isenabled()
