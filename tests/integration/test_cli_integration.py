"""`purgebridge purge` as a subprocess against three real varnishd nodes.

Pages are cached on all three nodes first; after the purge the purged URLs are
a MISS on every node while an unrelated URL is still a HIT.
"""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def purgebridge(*args, nodes, stdin=None, timeout=60):
    env = dict(os.environ, PURGEBRIDGE_NODES=",".join(nodes), PURGEBRIDGE_TIMEOUT="1",
               PURGEBRIDGE_RETRIES="1", PURGEBRIDGE_BACKOFF="0.05", PURGEBRIDGE_VCL="")
    return subprocess.run([sys.executable, "-m", "purgebridge", *args], input=stdin, capture_output=True,
                          text=True, env=env, timeout=timeout, cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def names(cluster):
    return [vn.node.name for vn in cluster.nodes]


def test_purge_reaches_every_node(cluster, site):
    paths = ["/", "/hello-world/", "/category/news/", "/unrelated/"]
    cluster.warm(paths, site)
    for vn in cluster.nodes:
        assert [cluster.xcache(vn, p, site) for p in paths] == ["HIT"] * 4
    result = purgebridge("purge", *(f"http://{site}{p}" for p in paths[:3]), nodes=names(cluster))
    assert result.returncode == 0, result.stdout + result.stderr
    for name in names(cluster):
        assert name in result.stdout
    for vn in cluster.nodes:
        assert [cluster.xcache(vn, p, site) for p in paths[:3]] == ["MISS"] * 3, vn.name
        assert cluster.xcache(vn, "/unrelated/", site) == "HIT", vn.name


def test_stdin_and_json_match_what_happened(cluster, site):
    paths = [f"/p/{i}/" for i in range(50)]
    cluster.warm(paths, site)
    stdin = "".join(f"http://{site}{p}\n" for p in paths)
    result = purgebridge("purge", "--json", "-", nodes=names(cluster), stdin=stdin)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["ok"] is True and data["problems"] == []
    assert [n["node"] for n in data["nodes"]] == names(cluster)
    assert all(n["purged"] + n["not_cached"] == 50 and n["failed"] == 0 for n in data["nodes"])
    assert {cluster.xcache(vn, p, site) for vn in cluster.nodes for p in paths} == {"MISS"}


def test_stopped_node_gives_exit_1_and_is_named(cluster, site):
    cluster.warm(["/a/"], site)
    stopped = cluster.nodes[1]
    stopped.stop()
    result = purgebridge("purge", f"http://{site}/a/", nodes=names(cluster))
    assert result.returncode == 1
    problem_lines = [line for line in result.stdout.splitlines() if "failed" in line and site in line]
    assert problem_lines and all(stopped.node.name in line for line in problem_lines)
    for vn in (cluster.nodes[0], cluster.nodes[2]):
        assert cluster.xcache(vn, "/a/", site) == "MISS"


def test_refusing_acl_gives_refused_and_exit_1(cluster, refusing_node, site):
    cluster.warm(["/b/"], site)
    nodes = names(cluster) + [refusing_node.node.name]
    result = purgebridge("purge", "--json", f"http://{site}/b/", nodes=nodes)
    assert result.returncode == 1
    data = json.loads(result.stdout)
    refused = {n["node"]: n["refused"] for n in data["nodes"]}
    assert refused[refusing_node.node.name] == 1
    assert all(refused[n] == 0 for n in names(cluster))
    assert data["problems"][0]["outcome"] == "refused" and data["problems"][0]["status"] == 405


def test_nodes_command_against_real_varnish(cluster):
    result = purgebridge("nodes", "--json", nodes=names(cluster))
    assert result.returncode == 0, result.stdout + result.stderr
    assert {r["state"] for r in json.loads(result.stdout)["nodes"]} == {"up"}


def test_nodes_command_shows_which_nodes_have_key_purges(cluster, noxkey_node):
    result = purgebridge("nodes", "--json", nodes=names(cluster) + [noxkey_node.node.name])
    assert result.returncode == 0, result.stdout + result.stderr   # no key purges is not a fault
    keys = {r["node"]: (r["state"], r["keys"]) for r in json.loads(result.stdout)["nodes"]}
    assert keys == {**{name: ("up", True) for name in names(cluster)}, noxkey_node.node.name: ("up", False)}
    table = purgebridge("nodes", nodes=[noxkey_node.node.name]).stdout
    assert " no " in table.splitlines()[1], table


def test_nodes_from_vcl_acl(cluster, tmp_path, site):
    vcl = tmp_path / "farm.vcl"
    vcl.write_text("vcl 4.1;\n# the farm\nacl purge {\n" +
                   "".join(f'    "{vn.node.host}";  // node\n' for vn in cluster.nodes) +
                   '    ! "127.0.0.99";\n}\n')
    cluster.warm(["/from-vcl/"], site)
    env_nodes = []
    result = subprocess.run(
        [sys.executable, "-m", "purgebridge", "--vcl", str(vcl), "purge", "--json", f"http://{site}/from-vcl/"],
        capture_output=True, text=True, timeout=60,
        env=dict(os.environ, PURGEBRIDGE_NODES=",".join(env_nodes), PURGEBRIDGE_NODE_PORT=str(cluster.port)),
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert result.returncode == 0, result.stdout + result.stderr
    assert [n["node"] for n in json.loads(result.stdout)["nodes"]] == names(cluster)
    assert {cluster.xcache(vn, "/from-vcl/", site) for vn in cluster.nodes} == {"MISS"}


def test_ban_and_purge_all_through_the_vcl(cluster, site):
    paths = ["/category/news/", "/category/news/page/2/", "/about/"]
    cluster.warm(paths, site)
    result = purgebridge("ban", "--host", site, "^/category/news/", nodes=names(cluster))
    assert result.returncode == 0, result.stdout + result.stderr
    for vn in cluster.nodes:
        assert [cluster.xcache(vn, p, site) for p in paths] == ["MISS", "MISS", "HIT"]
    cluster.warm(paths, site)
    assert purgebridge("purge", "--all", "--host", site, nodes=names(cluster)).returncode == 0
    assert {cluster.xcache(vn, p, site) for vn in cluster.nodes for p in paths} == {"MISS"}


def test_key_purge_through_the_vcl(cluster, site):
    """Pages tagged by the origin's xkey header; purging a key drops only its pages, on every node."""
    tagged = {"/a/?xkey=post-1,front": "MISS", "/b/?xkey=post-2": "HIT", "/c/?xkey=post-3,front": "MISS"}
    cluster.warm(list(tagged), site)
    result = purgebridge("purge", "--json", "--host", site, "--key", "post-1", "--key", "front", nodes=names(cluster))
    assert result.returncode == 0, result.stdout + result.stderr
    assert {n["purged"] for n in json.loads(result.stdout)["nodes"]} == {1}
    for vn in cluster.nodes:
        assert {p: cluster.xcache(vn, p, site) for p in tagged} == tagged, vn.name
    other = f"other-{site}"  # keys are scoped by Host in vcl/wordpress.vcl
    cluster.warm(["/d/?xkey=post-2"], other)
    assert purgebridge("purge", "--host", site, "--key", "post-2", nodes=names(cluster)).returncode == 0
    assert {cluster.xcache(vn, "/d/?xkey=post-2", other) for vn in cluster.nodes} == {"HIT"}
    assert {cluster.xcache(vn, "/b/?xkey=post-2", site) for vn in cluster.nodes} == {"MISS"}
