"""mypy on the package, with the settings in setup.cfg ([mypy]): the annotations must hold.

mypy comes from the test extra (setup.cfg); missing, this test fails with
the install hint instead of skipping.
"""

import importlib.util
from pathlib import Path
import subprocess
import sys

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_mypy_finds_no_type_errors_in_the_package():
    if importlib.util.find_spec("mypy") is None:
        pytest.fail("mypy is not installed: pip install -e '.[test]' (setup.cfg's test extra)", pytrace=False)
    result = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(REPO / "setup.cfg"),
                             "--cache-dir", str(REPO / ".mypy_cache")],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
