"""Fixtures for real varnishd clusters on loopback in front of a tiny origin.

- ``cluster_vcl``   path of the VCL the nodes run (vcl/wordpress.vcl when it has
                    the site markers, else tests/vcl/relay-test.vcl;
                    PURGEBRIDGE_TEST_VCL=path overrides)
- ``origin``        the origin (module scope); ``origin.hits[(host, path)]``
- ``cluster``       three varnishd nodes on 127.0.0.11-13, one shared port, in front
                    of ``origin`` (module scope). After every test any node a test
                    stopped is started again, so stopping one is safe.
- ``refusing_node`` one more varnishd (127.0.0.14) whose purge acl does not
                    include loopback: PURGE/BAN from us get 405
- ``noxkey_node``   one more varnishd (127.0.0.15) running vcl/wordpress-noxkey.vcl:
                    PURGE and BAN work, PURGEKEYS is answered 501 (no key purges)
- ``site``          a Host header unique to the test, so cached objects of one
                    test never leak into another

varnishd missing is a test *failure* with an install hint, never a skip.
"""

import itertools
import os
from pathlib import Path

import pytest

from purgebridge import localcluster

_site_counter = itertools.count(1)


def _require_varnishd():
    if not localcluster.find_varnishd():
        pytest.fail(localcluster.varnishd_missing_message(), pytrace=False)


@pytest.fixture(scope="session")
def cluster_vcl():
    """PURGEBRIDGE_TEST_VCL (a path) overrides the default, e.g. to run against tests/vcl/relay-test.vcl."""
    _require_varnishd()
    override = os.environ.get("PURGEBRIDGE_TEST_VCL")
    if override:
        if not localcluster.has_site_markers(override):
            pytest.fail(f"PURGEBRIDGE_TEST_VCL={override}: missing file or site marker lines", pytrace=False)
        return Path(override).resolve()
    return localcluster.default_vcl_path()


@pytest.fixture(scope="module")
def origin():
    server = localcluster.start_origin("127.0.0.1", 0)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cluster_module(cluster_vcl, origin, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("cluster")
    with localcluster.start_cluster(cluster_vcl, origin=origin, workdir=workdir) as running:
        yield running


@pytest.fixture
def cluster(cluster_module):
    yield cluster_module
    for node in cluster_module.nodes:
        if not node.running:
            node.start()


@pytest.fixture(scope="module")
def refusing_node(cluster_module):
    # 192.0.2.1 is a documentation address (RFC 5737): text in the acl only, never contacted.
    node = cluster_module.add_node("127.0.0.14", acl=('"192.0.2.1"',))
    yield node
    node.stop()


@pytest.fixture(scope="module")
def noxkey_node(cluster_module):
    node = cluster_module.add_node("127.0.0.15", vcl_path=localcluster.REPO_ROOT / "vcl" / "wordpress-noxkey.vcl")
    yield node
    node.stop()


@pytest.fixture
def site():
    return f"t{next(_site_counter)}.site.test"
