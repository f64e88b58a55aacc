"""The shipped VCL (vcl/*.vcl): it compiles, keeps its contracts, and every
vcl/tests/*.vtc passes under Debian's varnishtest.

Why here as well as vcl/tests/run.sh: CI runs pytest, and a VCL that stops
compiling or a behaviour test that breaks must fail the build. Missing
varnishd / varnishtest is a failure with an install hint, never a skip.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VCL_DIR = REPO / "vcl"
VTC_DIR = VCL_DIR / "tests"
SHIPPED = ["wordpress.vcl", "wordpress-noxkey.vcl", "degrade.vcl"]
VTCS = sorted(p.name for p in VTC_DIR.glob("*.vtc"))

SITE_BEGIN = "# >>> purgebridge site: backend and acl"
SITE_END = "# <<< purgebridge site"
DEGRADE_BEGIN = "# >>> purgebridge degrade: probes"
DEGRADE_END = "# <<< purgebridge degrade"
DEGRADE_INCLUDE = '#include "./degrade.vcl";'

# Debian installs varnishd in /usr/sbin, which is not always on PATH.
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
HINT = "install Debian's 'varnish' and 'varnish-modules' packages (apt-get install varnish varnish-modules)"


def _tool(name):
    path = shutil.which(name, path=SEARCH_PATH)
    if not path:
        pytest.fail(f"{name} not found on PATH or in /usr/sbin: {HINT}", pytrace=False)
    return path


def _compile(vcl_file, tmp_path):
    """varnishd -C -f <absolute path>, run from an unrelated cwd.

    ``-j none``: as root varnishd would read the file as its unprivileged
    user, which cannot enter pytest's private tmp directories.
    """
    varnishd = _tool("varnishd")
    workdir = tmp_path / "varnishd-n"
    workdir.mkdir(exist_ok=True)
    result = subprocess.run(
        [varnishd, "-C", "-j", "none", "-n", str(workdir), "-f", str(Path(vcl_file).resolve())],
        cwd="/", capture_output=True, text=True, timeout=120)
    return result


def _region(text, begin, end):
    lines = text.splitlines()
    assert lines.count(begin) == 1, f"marker {begin!r} must appear exactly once"
    assert lines.count(end) == 1, f"marker {end!r} must appear exactly once"
    first, last = lines.index(begin), lines.index(end)
    assert first < last
    return lines[:first], lines[first + 1:last], lines[last + 1:]


def _replace_region(text, begin, end, body):
    before, _, after = _region(text, begin, end)
    return "\n".join(before + [begin, body, end] + after) + "\n"


@pytest.mark.integration
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_vcl_compiles(name, tmp_path):
    result = _compile(VCL_DIR / name, tmp_path)
    assert result.returncode == 0, f"varnishd -C -f vcl/{name} failed:\n{result.stderr[-3000:]}"


@pytest.mark.integration
def test_wordpress_with_degrade_included_compiles(tmp_path):
    """The documented way to enable degradation: uncomment the include line."""
    text = (VCL_DIR / "wordpress.vcl").read_text()
    assert text.splitlines().count(DEGRADE_INCLUDE) == 1
    (tmp_path / "wordpress.vcl").write_text(text.replace(DEGRADE_INCLUDE, DEGRADE_INCLUDE[1:]))
    shutil.copy(VCL_DIR / "degrade.vcl", tmp_path / "degrade.vcl")
    result = _compile(tmp_path / "wordpress.vcl", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    # Both parts really are in the compiled program.
    assert "purgebridge_degrade_recv" in result.stderr
    assert "purgebridge_keys" in result.stderr


@pytest.mark.integration
def test_site_region_renders_and_compiles(tmp_path):
    """Contract with the test tooling: replacing the marked region is enough."""
    text = (VCL_DIR / "wordpress.vcl").read_text()
    before, region, after = _region(text, SITE_BEGIN, SITE_END)
    region_text = "\n".join(region)
    assert "backend default {" in region_text
    assert 'acl purge { "127.0.0.1"; "::1"; }' in region_text
    outside = "\n".join(before + after)
    assert not re.search(r"^\s*backend\s+\w+\s*\{", outside, re.M), "backend outside the site region"
    assert not re.search(r"^\s*acl\s+\w+", outside, re.M), "acl outside the site region"
    rendered = _replace_region(
        text, SITE_BEGIN, SITE_END,
        'backend default { .host = "127.0.0.1"; .port = "1"; }\nacl purge { "127.0.0.2"; }')
    (tmp_path / "site.vcl").write_text(rendered)
    result = _compile(tmp_path / "site.vcl", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]


def test_degrade_region_holds_only_the_probed_backends():
    _, region, _ = _region((VCL_DIR / "degrade.vcl").read_text(), DEGRADE_BEGIN, DEGRADE_END)
    region_text = "\n".join(region)
    assert "backend purgebridge_level2 {" in region_text
    assert "backend purgebridge_level3 {" in region_text
    assert '/?purgebridge-probe=2' in region_text and '/?purgebridge-probe=3' in region_text
    assert "sub " not in region_text


def test_noxkey_file_is_generated_from_wordpress_vcl(tmp_path):
    """wordpress-noxkey.vcl must be exactly what make-noxkey.sh produces."""
    out = tmp_path / "noxkey.vcl"
    subprocess.run(["sh", str(VTC_DIR / "make-noxkey.sh"), str(VCL_DIR / "wordpress.vcl"), str(out)],
                   check=True, timeout=30)
    shipped = (VCL_DIR / "wordpress-noxkey.vcl").read_text()
    assert shipped == out.read_text(), "run vcl/tests/make-noxkey.sh to regenerate wordpress-noxkey.vcl"
    assert "import xkey" not in shipped
    assert not re.search(r"\bxkey\.(soft)?purge\(", shipped)
    assert "import xkey;" in (VCL_DIR / "wordpress.vcl").read_text()


def test_every_behaviour_has_a_vtc():
    expected = {"purge_acl", "purge_variants", "soft_purge", "ban", "xkey", "xkey_hosts", "cookies",
                "nocache", "static", "xcache", "debug", "grace", "grace_5xx", "degrade", "noxkey", "host_spellings"}
    assert expected <= {Path(n).stem for n in VTCS}


@pytest.mark.integration
@pytest.mark.parametrize("vtc", VTCS)
def test_vtc(vtc):
    varnishtest = _tool("varnishtest")
    _tool("varnishd")
    env = dict(os.environ, PATH=SEARCH_PATH)
    result = subprocess.run([varnishtest, "-q", "-t", "120", str(VTC_DIR / vtc)],
                            capture_output=True, text=True, timeout=180, env=env)
    if result.returncode != 0:
        # Re-run verbosely for a useful failure message.
        verbose = subprocess.run([varnishtest, "-v", "-t", "120", str(VTC_DIR / vtc)],
                                 capture_output=True, text=True, timeout=180, env=env)
        errors = [l for l in (verbose.stdout + verbose.stderr).splitlines()
                  if l.startswith(("----", "#"))]
        pytest.fail(f"varnishtest {vtc} failed (rc={result.returncode}):\n"
                    + "\n".join(errors[:40]) + "\n" + result.stdout[-2000:] + result.stderr[-2000:],
                    pytrace=False)
