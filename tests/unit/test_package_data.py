"""The files the release is built from stay in step with their sources.

- purgebridge/vcl/*.vcl (package data: `purgebridge demo` from a wheel) are byte-for-byte the
  operator's vcl/*.vcl; release/sync-vcl.sh copies them.
- contrib/purgebridge.env is what purgebridge.config.env_example writes from the settings table,
  so every setting is in it with its current description and default.
"""

from pathlib import Path

from purgebridge.config.env_example import render
from purgebridge.config.settings import VARIABLES

REPO = Path(__file__).resolve().parent.parent.parent


def test_the_packaged_vcl_files_are_copies_of_vcl():
    sources = sorted((REPO / "vcl").glob("*.vcl"))
    assert sources, "vcl/*.vcl missing"
    for source in sources:
        copy = REPO / "purgebridge" / "vcl" / source.name
        assert copy.is_file() and not copy.is_symlink(), f"{copy} missing: run bash release/sync-vcl.sh"
        assert copy.read_bytes() == source.read_bytes(), f"{copy} differs from {source}: run bash release/sync-vcl.sh"
    assert (REPO / "purgebridge" / "vcl" / "relay-test.vcl").is_file()


def test_the_example_env_file_is_generated_from_the_settings_table():
    committed = (REPO / "contrib" / "purgebridge.env").read_text(encoding="utf-8")
    assert committed == render(), ("contrib/purgebridge.env is stale: "
                                   "python -m purgebridge.config.env_example > contrib/purgebridge.env")
    for name, (_attr, _parser, _default, doc) in VARIABLES.items():
        assert f"{name}=" in committed and doc.split()[0] in committed, name
