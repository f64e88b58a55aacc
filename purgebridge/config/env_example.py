"""The example env file (contrib/purgebridge.env), written from the settings table so it cannot fall behind.

``python -m purgebridge.config.env_example > contrib/purgebridge.env`` writes it;
tests/unit/test_package_data.py fails while the committed file differs, and
release/build.sh writes it into the release. Every variable is there with its
description and default: the ones a relay needs are set (empty where only the
operator knows the value, so ``serve --check`` names what is missing), the
others are commented out at their default.
"""

import sys
import textwrap

from purgebridge.config.settings import VARIABLES

# Set in the example: what every production relay decides. Empty ones must be filled in.
PRODUCTION = {
    "PURGEBRIDGE_NODES": "",
    "PURGEBRIDGE_SITES": "",
    "PURGEBRIDGE_SECRET": "",
    "PURGEBRIDGE_WEBHOOK_TOKEN": "",
    "PURGEBRIDGE_ADMIN_TOKEN": "",
    "PURGEBRIDGE_LISTEN": "127.0.0.1:8787",
    "PURGEBRIDGE_QUEUE": "/var/lib/purgebridge/queue.sqlite3",
    "PURGEBRIDGE_LOG_FORMAT": "json",
}

HEADER = """\
# purgebridge relay settings: /etc/purgebridge/purgebridge.env (mode 0640, owner root, group purgebridge).
#
# Read by `purgebridge --env-file /etc/purgebridge/purgebridge.env serve` (contrib/systemd/purgebridge.service)
# at start and again at every `systemctl reload` (SIGHUP): sites, nodes, secrets and tokens change without a
# restart; PURGEBRIDGE_LISTEN and PURGEBRIDGE_QUEUE only with one. Check an edit first:
#   purgebridge --env-file /etc/purgebridge/purgebridge.env serve --check
# A variable set in the service's environment wins over this file. Secrets and tokens: at least 16 random
# characters each, all different (python3 -c 'import secrets; print(secrets.token_hex(16))').
# Generated from purgebridge/config/settings.py by `python -m purgebridge.config.env_example`; every setting
# is documented in docs/configuration.md.
"""


def render() -> str:
    """The example file's text."""
    parts = [HEADER]
    for name, (_attr, _parser, default, doc) in VARIABLES.items():
        lines = textwrap.wrap(doc, width=98, break_on_hyphens=False)
        text = "\n".join("# " + line for line in lines)
        if name in PRODUCTION:
            value = PRODUCTION[name]
            needed = "  (required)" if not value else ""
            parts.append(f"{text}\n# default: {default or '(empty)'}{needed}\n{name}={value}\n")
        else:
            parts.append(f"{text}\n#{name}={default}\n")
    return "\n".join(parts)


def main() -> None:
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
