"""From the release artifacts alone, as README.md's "Production install" goes.

``bash release/build.sh`` builds the release into a temporary directory; the wheel goes into a fresh
virtualenv made by the system's python3 (no checkout on sys.path, cwd outside the checkout, no
PURGEBRIDGE_* or PYTHONPATH from the test's environment), the plugin zip into a fresh WordPress through
its own Plugin_Upgrader, and the production tarball gives the env file, the unit, the rules and the VCL:

- ``purgebridge demo`` runs on the packaged VCL;
- ``purgebridge --env-file purgebridge.env serve`` (the example env file, its required values filled in
  as an operator does) relays a signed event and a real WordPress edit to three varnishd running the
  tarball's wordpress.vcl, and ``status`` reports every node;
- ``sitemap-urls`` lists the WordPress's own wp-sitemap.xml;
- ``systemd-analyze verify`` passes on the tarball's unit pointed at that virtualenv, ``promtool check
  rules`` on its rules.
"""

import re
import secrets
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from fixtures.env_relay import EnvFileRelay, clean_env
from fixtures.relay import change, event, free_port
from fixtures.wordpress import served_wordpress, wordpress_cluster

pytestmark = [pytest.mark.integration, pytest.mark.wordpress]

REPO = Path(__file__).resolve().parent.parent.parent
SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin") or "python3"


def version():
    return re.search(r'__version__ = "([^"]+)"', (REPO / "purgebridge" / "__init__.py").read_text())[1]


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """The built release: {"dist", "version", "venv", "prod", "home"} (home: a directory outside the checkout)."""
    base = tmp_path_factory.mktemp("release")
    dist = base / "dist"
    built = subprocess.run(["bash", str(REPO / "release" / "build.sh"), str(dist)], capture_output=True, text=True,
                           timeout=600)
    assert built.returncode == 0, built.stdout + built.stderr
    v = version()
    names = {f"purgebridge-{v}-py3-none-any.whl", f"purgebridge-{v}.tar.gz", f"purgebridge-{v}.zip",
             f"purgebridge-{v}-production.tar.gz", "SHA256SUMS"}
    assert {p.name for p in dist.iterdir()} == names
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=dist, capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr

    venv = base / "venv"
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(venv)], check=True, timeout=120, env=clean_env(), cwd=base)
    installed = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(dist / f"purgebridge-{v}-py3-none-any.whl")],
                               capture_output=True, text=True, timeout=600, env=clean_env(), cwd=base)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    with tarfile.open(dist / f"purgebridge-{v}-production.tar.gz") as archive:
        if hasattr(tarfile, "data_filter"):
            archive.extractall(base, filter="data")
        else:  # Debian 12's Python 3.11.2 predates extraction filters: check every name ourselves
            for member in archive.getmembers():
                parts = Path(member.name).parts
                assert (member.isfile() or member.isdir()) and not member.name.startswith("/") and ".." not in parts, \
                    f"unsafe member in the production tarball: {member.name}"
            archive.extractall(base)
    prod = base / f"purgebridge-{v}-production"
    assert (prod / "VERSION").read_text().strip() == v
    home = base / "home"
    home.mkdir()
    return {"dist": dist, "version": v, "venv": venv, "prod": prod, "home": home}


def pb(release, *args, timeout=120, stdin=None):
    """``purgebridge ARGS`` from the release's virtualenv, run where no checkout is."""
    return subprocess.run([str(release["venv"] / "bin" / "purgebridge"), *args], capture_output=True, text=True,
                          timeout=timeout, env=clean_env(), cwd=release["home"], input=stdin)


def test_the_artifacts_are_one_version_and_self_contained(release):
    v, dist = release["version"], release["dist"]
    with zipfile.ZipFile(dist / f"purgebridge-{v}-py3-none-any.whl") as wheel:
        names = wheel.namelist()
    for vcl in ("wordpress.vcl", "wordpress-noxkey.vcl", "degrade.vcl", "relay-test.vcl"):
        assert f"purgebridge/vcl/{vcl}" in names
    assert "purgebridge/store/lua/append.lua" in names
    assert not [n for n in names if n.startswith("tests/")]
    with zipfile.ZipFile(dist / f"purgebridge-{v}.zip") as plugin:
        header = plugin.read("purgebridge/purgebridge.php").decode()
    assert re.search(r"^ \* Version: +" + re.escape(v) + "$", header, re.M)
    where = subprocess.run([str(release["venv"] / "bin" / "python"), "-c", "import purgebridge; print(purgebridge.__file__)"],
                           capture_output=True, text=True, timeout=60, env=clean_env(), cwd=release["home"])
    assert where.stdout.startswith(str(release["venv"])), where.stdout + where.stderr
    assert pb(release, "--version").stdout.strip().endswith(v)
    for name in ("systemd/purgebridge.service", "purgebridge.env", "prometheus/purgebridge-rules.yml",
                 "grafana/purgebridge-dashboard.json"):
        assert (release["prod"] / "contrib" / name).is_file(), name


def test_demo_runs_from_the_installed_wheel(release):
    result = pb(release, "demo", timeout=180)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"(VCL: {release['venv']}" in result.stdout  # the packaged VCL, not a checkout's
    assert "OK: the purge reached every node" in result.stdout


def fill_env(example, values):
    """The example env file with its required values filled in, as the operator does (one line each)."""
    text = example.read_text()
    for name, value in values.items():
        text, count = re.subn(rf"^#?{name}=.*$", f"{name}={value}", text, flags=re.M)
        assert count == 1, name
    return text


def test_serve_with_the_example_env_file_relays_a_signed_event_and_a_wordpress_edit(release, tmp_path):
    v, prod, home = release["version"], release["prod"], release["home"]
    secret, relay_port = secrets.token_hex(16), free_port()
    admin = secrets.token_hex(16)
    with served_wordpress(tmp_path / "wp", relay_url=f"http://127.0.0.1:{relay_port}", secret=secret,
                          extra_config="define('FS_METHOD', 'direct');",
                          plugin_zip=release["dist"] / f"purgebridge-{v}.zip") as site, \
            wordpress_cluster(site.port, tmp_path / "cluster", vcl=prod / "vcl" / "wordpress.vcl") as cluster:
        env_file = home / "purgebridge.env"
        env_file.write_text(fill_env(prod / "contrib" / "purgebridge.env", {
            "PURGEBRIDGE_NODES": cluster.nodes_env(), "PURGEBRIDGE_SITES": site.host,
            "PURGEBRIDGE_SECRET": secret, "PURGEBRIDGE_WEBHOOK_TOKEN": secrets.token_hex(16),
            "PURGEBRIDGE_ADMIN_TOKEN": admin, "PURGEBRIDGE_LISTEN": f"127.0.0.1:{relay_port}",
            "PURGEBRIDGE_QUEUE": str(home / "queue.sqlite3"), "PURGEBRIDGE_TIMEOUT": "1"}))
        checked = pb(release, "--env-file", str(env_file), "serve", "--check")
        assert checked.returncode == 0 and checked.stdout.startswith("configuration ok: 1 site(s), 3 node(s)"), \
            checked.stdout + checked.stderr

        relay = EnvFileRelay(home, env_file, relay_port, secret, command=[str(release["venv"] / "bin" / "purgebridge")],
                             env=clean_env())
        try:
            def drained(events):
                state = relay.status(admin).json()
                return state["totals"]["events"] >= events and state["queue"]["depth"] == 0

            # a signed event, as the plugin signs it: a post update purges the front page
            cluster.warm(["/"], site.host)
            answer = relay.send(event(site.host, change(site.host, 5)))
            assert answer.status_code == 202, answer.text
            relay.wait_for(lambda: drained(1), "the signed event purged", timeout=60)
            assert [cluster.xcache(vn, "/", site.host) for vn in cluster.nodes] == ["MISS"] * 3

            # a real edit in the WordPress the zip was installed into
            permalink = site.php("return get_permalink(1);")
            path = permalink[len(site.url):]
            cluster.warm([path], site.host)
            assert all(cluster.xcache(vn, path, site.host) == "HIT" for vn in cluster.nodes)
            site.php("wp_set_current_user(1); wp_update_post(array('ID' => 1, 'post_content' => 'from the release'));"
                     " return true;")
            relay.wait_for(lambda: drained(2), "the WordPress edit purged", timeout=60)
            assert [cluster.xcache(vn, path, site.host) for vn in cluster.nodes] == ["MISS"] * 3

            status = pb(release, "--env-file", str(env_file), "status")
            assert status.returncode == 0, status.stdout + status.stderr
            for vn in cluster.nodes:
                assert vn.name in status.stdout

            listed = pb(release, "sitemap-urls", site.url + "/")
            assert listed.returncode == 0, listed.stderr
            assert permalink in listed.stdout.splitlines()
        finally:
            relay.stop()
        assert relay.proc.returncode == 0, relay.log()


def test_the_tarballs_unit_and_rules_pass_their_tools(release, tmp_path):
    analyze = shutil.which("systemd-analyze")
    promtool = shutil.which("promtool")
    assert analyze, "systemd-analyze is missing: apt-get install systemd"
    assert promtool, "promtool is missing: apt-get install prometheus"
    unit = tmp_path / "purgebridge.service"
    unit.write_text((release["prod"] / "contrib" / "systemd" / "purgebridge.service").read_text()
                    .replace("/opt/purgebridge/bin", str(release["venv"] / "bin")))
    verified = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert verified.returncode == 0 and verified.stderr == "", verified.stderr
    rules = release["prod"] / "contrib" / "prometheus" / "purgebridge-rules.yml"
    checked = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
