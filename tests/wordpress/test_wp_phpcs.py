"""The plugin's PHP follows its coding standard, wp-plugin/phpcs.xml.dist.

The ruleset uses only the sniffs Debian's php-codesniffer ships (the WordPress
Coding Standards are not packaged), chosen to match the WordPress style the
plugin is written in. Every ``phpcs:ignore`` in the plugin must name a sniff
that ruleset checks: an ignore for a standard nothing runs hides nothing.
"""

from pathlib import Path
import re
import shutil
import subprocess

import pytest

REPO = Path(__file__).resolve().parents[2]
RULESET = REPO / "wp-plugin" / "phpcs.xml.dist"
PLUGIN = REPO / "wp-plugin" / "purgebridge"


def phpcs():
    path = shutil.which("phpcs")
    if not path:
        pytest.fail("phpcs is missing: apt-get install php-codesniffer (or run bash .ci/setup)", pytrace=False)
    return path


def test_plugin_passes_its_phpcs_ruleset():
    proc = subprocess.run([phpcs(), "--standard=" + str(RULESET), "--report=full", "-s", "--no-colors"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, "phpcs found problems (exit %d):\n%s%s" % (proc.returncode, proc.stdout, proc.stderr)


def test_every_phpcs_ignore_names_a_checked_sniff():
    proc = subprocess.run([phpcs(), "--standard=" + str(RULESET), "-e"], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checked = set(re.findall(r"^\s+([A-Z][A-Za-z0-9]*\.[A-Za-z0-9]+\.[A-Za-z0-9]+)\s*$", proc.stdout, re.M))
    assert checked, "phpcs -e listed no sniffs:\n" + proc.stdout
    unknown = []
    for path in sorted(PLUGIN.rglob("*.php")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            match = re.search(r"phpcs:(?:ignore|disable|enable)\b\s*([^\s-][^ ]*)?", line)
            if not match:
                continue
            names = [n for n in (match.group(1) or "").split(",") if n]
            if not names:
                unknown.append("%s:%d: names no sniff" % (path.relative_to(REPO), number))
            for name in names:
                sniff = ".".join(name.split(".")[:3])
                if sniff not in checked:
                    unknown.append("%s:%d: %s is not checked by %s" % (path.relative_to(REPO), number, name,
                                                                          RULESET.relative_to(REPO)))
    assert not unknown, "\n".join(unknown)
