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


STRICT_FLAGS = {"disallow_untyped_defs", "disallow_incomplete_defs", "disallow_untyped_calls", "disallow_any_generics",
                "check_untyped_defs", "no_implicit_reexport", "warn_return_any", "strict_equality"}


def strict_sections():
    import configparser

    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    return {section: config[section] for section in config.sections() if section.startswith("mypy-")
            and all(config[section].getboolean(flag, fallback=False) for flag in STRICT_FLAGS)}


def test_all_of_core_is_checked_strictly():
    """The domain is fully annotated and stays so: a new function without annotations fails mypy in CI."""
    patterns = {pattern.strip() for section in strict_sections() for pattern in section[len("mypy-"):].split(",")}
    assert "purgebridge.core.*" in patterns, patterns


CORE_SURFACE = {
    "backoff": {"backoff_delay"},
    "cms": {"GHOST_DEFAULT_ROUTES", "GHOST_SITEMAPS", "GHOST_POST_CARDS", "GHOST_CARD_FIELDS",
            "GHOST_REPLAY_WINDOW", "GHOST_SITE_CHANGED_WINDOW", "CMSConfigError", "GhostSignatureError", "Targets",
            "GhostSettings", "ModelTemplates", "TemplateSettings", "PurgeDoorSettings", "CMSSettings",
            "TemplateEvent", "parse_cms", "verify_ghost", "ghost_kind", "looks_like_ghost", "ghost_targets",
            "parse_template_event", "render", "template_targets", "parents", "also_refresh", "siblings_ban", "known_body_route"},
    "errors": {"PurgebridgeError", "ConfigError", "VCLParseError", "InvalidURL", "InvalidEvent", "SignatureError",
               "QueueError", "QueueBusy", "QueueClosed", "QueueFileGone", "TransportError", "ConnectError",
               "ReadTimeout", "ProtocolError"},
    "events": {"MAX_CHANGES", "MAX_ITEMS", "MAX_TEXT", "MAX_ID", "MAX_KEEP_PATHS", "ACTIONS", "BODIES", "Event",
               "PostChange", "CommentChange", "TermChange", "SiteChange", "UrlsChange", "Change", "Post", "Term",
               "Author", "Webhook", "Purge", "Content", "PurgeRequest", "parse_json", "validate_wordpress_event",
               "validate_webhook", "validate_purge"},
    "invalidation": {"USER_AGENT", "MAX_KEY_HEADER", "MAX_LINE", "MAX_KEY_LENGTH", "KEY_PATTERN", "KEY_RULE", "Header",
                     "Invalidation", "is_surrogate_key", "encode_request", "invalidation_key", "key_of",
                     "purge_for_url", "ban_for", "purge_all_for", "keys_for"},
    "mapping": {"CHANGE_KINDS", "DEFAULT_KINDS", "MAX_PAGINATION", "RULES", "SurrogateKey", "Rule", "RuleFunction",
                "MappingOptions", "Invalidations", "Home", "Context", "applies_to", "date_archive_rule", "rule_names",
                "with_rules", "map_change", "map_batch", "map_content", "site_ban"},
    "bounds": {"MAX_EXPANSION", "MAX_HOST_BATCH", "size", "site_purge", "bounded"},
    "nodes": {"Node", "parse_node", "valid_host"},
    "signing": {"PREFIX", "WINDOW", "MAX_AGE", "MAX_AHEAD", "sign", "check_headers", "verify"},
    "urls": {"DEFAULT_PORTS", "MAX_TARGET_BYTES", "MAX_URL_LENGTH", "MAX_BAN_LENGTH", "split_url", "host_header",
             "check_ban_regex", "site_of"},
}


@pytest.mark.parametrize("name", sorted(CORE_SURFACE))
def test_the_public_surface_of_core(name):
    """Each core module says what it offers (``__all__``, as httpx does), and every name in it exists: a change of
    the surface is a decision made here, not an accident of an import."""
    import importlib

    module = importlib.import_module(f"purgebridge.core.{name}")
    assert set(module.__all__) == CORE_SURFACE[name]
    assert len(module.__all__) == len(set(module.__all__)), "a name listed twice"
    for public in module.__all__:
        assert hasattr(module, public), f"core.{name}.__all__ names {public}, which it does not define"


def test_every_core_module_has_a_declared_surface():
    modules = {path.stem for path in (REPO / "purgebridge" / "core").glob("*.py") if path.stem != "__init__"}
    assert modules == set(CORE_SURFACE)
