"""The local cluster itself: real varnishd nodes cache, honour PURGE/BAN, refuse strangers.

These tests guard the harness the integration tests and the demo rely on; if
they fail, a green fan-out test would mean nothing.
"""

import socket

import pytest

from purgebridge.testing import cluster as localcluster
from purgebridge.testing.cluster import LocalClusterError, render_vcl, xcache

pytestmark = pytest.mark.integration


def raw_request(node, method, path, host, extra=b""):
    """Send one request on a raw socket and return the status code (Connection: close)."""
    request = (f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n").encode() + extra + b"\r\n"
    with socket.create_connection((node.host, node.port), timeout=5) as sock:
        sock.settimeout(5)
        sock.sendall(request)
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    status_line = data.split(b"\r\n", 1)[0].decode()
    assert status_line.startswith("HTTP/1.1 "), status_line
    return int(status_line.split()[1])


def test_three_nodes_on_distinct_loopback_addresses_one_port(cluster):
    assert [n.host for n in cluster.nodes] == ["127.0.0.11", "127.0.0.12", "127.0.0.13"]
    assert len({n.port for n in cluster.nodes}) == 1
    assert cluster.nodes_env() == ",".join(f"{h}:{cluster.port}" for h in ("127.0.0.11", "127.0.0.12", "127.0.0.13"))
    assert all(n.running for n in cluster.nodes)


def test_get_is_miss_then_hit_on_every_node(cluster, origin, site):
    first = cluster.warm(["/hello/", "/world/?p=2"], site)
    second = cluster.warm(["/hello/", "/world/?p=2"], site)
    assert set(first.values()) == {"MISS"}
    assert set(second.values()) == {"HIT"}
    # one origin fetch per node per path: the HITs really came from cache
    assert origin.hit_count(site, "/hello/") == 3
    assert origin.hit_count(site, "/world/?p=2") == 3


def test_purge_from_raw_socket_makes_only_that_url_a_miss(cluster, origin, site):
    cluster.warm(["/gone/", "/stays/"], site)
    node = cluster.nodes[1]
    assert raw_request(node, "PURGE", "/gone/", site) == 200
    assert xcache(node, "/gone/", site) == "MISS"
    assert xcache(node, "/stays/", site) == "HIT"
    # the other nodes were not purged
    assert xcache(cluster.nodes[0], "/gone/", site) == "HIT"
    assert origin.hit_count(site, "/gone/") == 4


def test_cache_key_includes_forwarded_proto(cluster, site):
    node = cluster.nodes[0]
    assert xcache(node, "/proto/", site, {"X-Forwarded-Proto": "https"}) == "MISS"
    assert xcache(node, "/proto/", site, {"X-Forwarded-Proto": "HTTPS"}) == "HIT"  # normalised
    assert xcache(node, "/proto/", site) == "MISS"  # plain http is another object
    assert raw_request(node, "PURGE", "/proto/", site, b"X-Forwarded-Proto: https\r\n") == 200
    assert xcache(node, "/proto/", site, {"X-Forwarded-Proto": "https"}) == "MISS"
    assert xcache(node, "/proto/", site) == "HIT"


def test_ban_by_url_regex_is_per_host(cluster, site):
    other = "other-" + site
    paths = ["/blog/a/", "/blog/b/", "/shop/"]
    cluster.warm(paths, site)
    cluster.warm(["/blog/a/"], other)
    node = cluster.nodes[2]
    assert raw_request(node, "BAN", "/", site, b"X-Ban-Url: ^/blog/\r\n") == 200
    assert [xcache(node, p, site) for p in paths] == ["MISS", "MISS", "HIT"]
    assert xcache(node, "/blog/a/", other) == "HIT"


def test_ban_without_regex_is_a_client_error(cluster, site):
    assert raw_request(cluster.nodes[0], "BAN", "/", site) == 400


def test_origin_counts_hits_per_host_and_sends_xkey(origin):
    import http.client

    conn = http.client.HTTPConnection(origin.host, origin.port, timeout=5)
    try:
        conn.request("GET", "/k/?xkey=post-1,term-2", headers={"Host": "direct.test"})
        resp = conn.getresponse()
        body = resp.read().decode()
    finally:
        conn.close()
    assert resp.status == 200
    assert resp.getheader("xkey") == "post-1 term-2"
    assert resp.getheader("Cache-Control") == "public, max-age=3600"
    assert "/k/?xkey=post-1,term-2" in body
    assert origin.hit_count("direct.test", "/k/?xkey=post-1,term-2") == 1


def test_origin_probe_can_be_made_to_fail(origin):
    import http.client

    def probe():
        conn = http.client.HTTPConnection(origin.host, origin.port, timeout=5)
        try:
            conn.request("GET", "/?purgebridge-probe=7", headers={"Host": "probe.test"})
            return conn.getresponse().status
        finally:
            conn.close()

    assert probe() == 200
    origin.probe_fail["7"] = True
    try:
        assert probe() == 503
    finally:
        origin.probe_fail.pop("7")


def test_stopped_node_refuses_connections_and_comes_back_on_same_address(cluster, site):
    node = cluster.nodes[0]
    name = node.name
    node.stop()
    assert not node.running
    with pytest.raises(OSError):
        socket.create_connection((node.host, node.port), timeout=2).close()
    node.start()
    assert node.name == name and node.running
    assert xcache(node, "/back/", site) == "MISS"
    assert xcache(node, "/back/", site) == "HIT"


def test_refusing_node_answers_405_to_purge_and_ban(refusing_node, site):
    assert refusing_node.host == "127.0.0.14"
    assert xcache(refusing_node, "/r/", site) == "MISS"
    assert raw_request(refusing_node, "PURGE", "/r/", site) == 405
    assert raw_request(refusing_node, "BAN", "/", site, b"X-Ban-Url: .\r\n") == 405
    assert xcache(refusing_node, "/r/", site) == "HIT"


def test_render_vcl_replaces_only_the_site_region(tmp_path):
    source = tmp_path / "s.vcl"
    source.write_text("vcl 4.1;\n# before\n" + localcluster.SITE_BEGIN + "\nbackend x { .host = \"a\"; }\n"
                      + localcluster.SITE_END + "\nsub vcl_recv { }\n")
    text = render_vcl(source, "127.0.0.1", 8099, ['"::1"', "127.0.0.0/8", "!127.0.0.5", "127.0.0.2"])
    assert text.startswith("vcl 4.1;\n# before\n")
    assert 'backend x' not in text
    assert '.host = "127.0.0.1";' in text and '.port = "8099";' in text
    for line in ('"::1";', '"127.0.0.0"/8;', '!"127.0.0.5";', '"127.0.0.2";'):
        assert "    " + line + "\n" in text
    assert text.rstrip().endswith("sub vcl_recv { }")


def test_render_vcl_without_markers_is_an_error(tmp_path):
    source = tmp_path / "plain.vcl"
    source.write_text("vcl 4.1;\nbackend default none;\n")
    with pytest.raises(LocalClusterError, match="marker"):
        render_vcl(source, "127.0.0.1", 80, [])


def test_varnishd_start_failure_shows_its_log(tmp_path, cluster_vcl):
    port = localcluster.free_port(["127.0.0.1"])
    with pytest.raises(LocalClusterError) as exc:
        localcluster.start_varnish("127.0.0.1", port, "vcl 4.1;\nthis is not vcl\n", tmp_path / "bad")
    assert "exited" in str(exc.value)
    assert "VCL" in str(exc.value) or "vcl" in str(exc.value)


def test_free_port_is_bindable_on_all_hosts():
    hosts = ["127.0.0.11", "127.0.0.12", "127.0.0.13"]
    port = localcluster.free_port(hosts)
    socks = []
    try:
        for host in hosts:
            sock = socket.socket()
            sock.bind((host, port))
            socks.append(sock)
    finally:
        for sock in socks:
            sock.close()
    assert len(socks) == 3


def test_render_vcl_keeps_the_acl_name_of_the_region(tmp_path):
    source = tmp_path / "named.vcl"
    source.write_text("vcl 4.1;\n" + localcluster.SITE_BEGIN + '\nacl purgers { "127.0.0.1"; }\n'
                      + localcluster.SITE_END + "\nsub vcl_recv { if (client.ip ~ purgers) { } }\n")
    text = render_vcl(source, "127.0.0.1", 8099, ["127.0.0.3"])
    assert 'acl purgers {\n    "127.0.0.3";\n}' in text
    assert "acl purge {" not in text


def test_demo_shows_the_purge_reaching_every_node(cluster_vcl):
    from purgebridge.testing.demo import PURGED, run_demo

    lines = []
    assert run_demo(lines.append, vcl=cluster_vcl) == 0, "\n".join(lines)
    out = "\n".join(lines)
    assert "OK: the purge reached every node" in out
    assert "PURGEBRIDGE_NODES=127.0.0.11:" in out
    after = out.split("3. The same pages now")[1].split("Try it yourself")[0]
    for path in PURGED:
        row = next(line for line in after.splitlines() if line.split()[:1] == [path])
        assert row.split()[1:] == ["MISS", "MISS", "MISS"], row
    assert sum(line.split()[1:] == ["HIT", "HIT", "HIT"] for line in after.splitlines()) == 3
