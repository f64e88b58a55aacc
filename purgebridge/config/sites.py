"""Which sites this relay may purge, and each site's secret and mapping options.

Two sources, merged:

* ``PURGEBRIDGE_SITES`` -- comma-separated hosts (``host`` or ``host:port``,
  a full ``https://host/`` is accepted too). They share ``PURGEBRIDGE_SECRET``.
* ``PURGEBRIDGE_SITES_FILE`` -- a JSON file for several sites with their own
  secrets and URL-mapping options (documented in docs/operations.md)::

      {"sites": [
        {"host": "blog.example.test", "secret_env": "BLOG_SECRET",
         "mapping": {"pagination": 5}},
        {"host": "shop.example.test:8443", "secret": "..."}
      ]}

  ``secret_env`` names an environment variable so the file itself can be
  world-readable; ``secret`` puts the secret inline. A site without either
  uses the global secret.

A host is the same text the ``Host`` header carries: lower case, with the port
only when it is not the scheme's default. Anything not listed is refused.
"""

from dataclasses import dataclass, field
import json
import os
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional

from purgebridge.core.cms import CMSConfigError, CMSSettings, parse_cms
from purgebridge.config.settings import Settings
from purgebridge.core.errors import ConfigError, InvalidURL
from purgebridge.core.mapping import MappingOptions
from purgebridge.core.urls import host_header, split_url

GLOBAL = "*"  # name of the shared secret in :meth:`Sites.secrets`


def normalise_host(text: str) -> str:
    """``Blog.Example.Test`` / ``https://blog.example.test/`` -> ``blog.example.test``."""
    text = text.strip()
    if "://" in text:
        return split_url(text)[1]  # a site URL: its host (a path, as for WordPress in a folder, is fine)
    host = host_header(text)
    # A listed default port means the same site as the bare host (what browsers send).
    return host[:-4] if host.endswith(":443") else host


@dataclass(frozen=True)
class Site:
    """One tenant: a host this relay may purge, its own secret (if any) and its mapping options."""

    host: str
    secret: str = field(default="", repr=False)
    mapping: Dict[str, Any] = field(default_factory=dict, compare=False)  # MappingOptions overrides
    cms: CMSSettings = field(default_factory=CMSSettings, compare=False)  # Ghost, templates, PURGE door


class Sites:
    """The allowed sites; built once per app by :func:`load_sites`."""

    def __init__(self, sites: Iterable[Site], global_secret: str = "") -> None:
        self._sites = {site.host: site for site in sites}
        self.global_secret = global_secret

    def __contains__(self, host: object) -> bool:
        return host in self._sites

    def __iter__(self) -> Iterator[Site]:
        return iter(self._sites.values())

    def __len__(self) -> int:
        return len(self._sites)

    def get(self, host: str) -> Optional[Site]:
        return self._sites.get(host)

    @property
    def hosts(self) -> List[str]:
        return sorted(self._sites)

    def secrets(self) -> Dict[str, str]:
        """name -> secret for signature checks: ``"*"`` plus one per site that has its own."""
        found: Dict[str, str] = {GLOBAL: self.global_secret} if self.global_secret else {}
        for site in self._sites.values():
            if site.secret:
                found[site.host] = site.secret
        return found

    def has_any_secret(self) -> bool:
        return bool(self.secrets())

    def takes_cms_requests(self, settings: Optional[Settings] = None) -> bool:
        """A site has Ghost or template settings, or the PURGE front door is open: serve needs no WordPress secret."""
        if settings is not None and settings.purge_allow:
            return True
        return any(site.cms.ghost or site.cms.templates for site in self._sites.values())

    def secret_for(self, host: Optional[str]) -> str:
        """The one secret that may sign for ``host``: the site's own if it has one, else the global one.

        A site with its own secret accepts only that secret (tenants stay
        apart); an unlisted host gets the global secret, so a request signed
        with it is authenticated and then refused with 403 as unlisted.
        """
        site = self._sites.get(host) if host is not None else None
        return site.secret if site is not None and site.secret else self.global_secret

    def mapping_options(self, host: str, settings: Settings) -> MappingOptions:
        """Build ``mapping.MappingOptions`` for ``host`` (global pagination, then the file's overrides)."""
        site = self._sites.get(host)
        values: Dict[str, Any] = {"pagination": settings.pagination}
        values.update(site.mapping if site else {})
        known = getattr(MappingOptions, "__dataclass_fields__", None)
        if known is not None:
            unknown = sorted(set(values) - set(known))
            if unknown:
                raise ConfigError("PURGEBRIDGE_SITES_FILE", settings.sites_file,
                                  f"site {host}: unknown mapping option(s) {', '.join(unknown)}")
        try:
            return MappingOptions(**values)
        except (TypeError, ValueError) as exc:
            raise ConfigError("PURGEBRIDGE_SITES_FILE", settings.sites_file, f"site {host}: {exc}") from None


def _read_file(path: str, environ: Mapping[str, str]) -> List[Site]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as exc:
        raise ConfigError("PURGEBRIDGE_SITES_FILE", path, f"cannot read: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError("PURGEBRIDGE_SITES_FILE", path, f"not valid JSON ({exc})") from None
    entries = data.get("sites") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ConfigError("PURGEBRIDGE_SITES_FILE", path, 'expected {"sites": [...]}')
    sites: List[Site] = []
    for index, entry in enumerate(entries):
        where = f"sites[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("host"), str):
            raise ConfigError("PURGEBRIDGE_SITES_FILE", path, f"{where}.host: expected a string")
        try:
            host = normalise_host(entry["host"])
        except InvalidURL as exc:
            raise ConfigError("PURGEBRIDGE_SITES_FILE", path, f"{where}.host: {exc.reason}") from None
        secret = entry.get("secret") or ""
        if entry.get("secret_env"):
            secret = environ.get(entry["secret_env"], "")
            if not secret:
                raise ConfigError("PURGEBRIDGE_SITES_FILE", path,
                                  f"{where}: environment variable {entry['secret_env']} is not set")
        if not isinstance(secret, str):
            raise ConfigError("PURGEBRIDGE_SITES_FILE", path, f"{where}.secret: expected a string")
        mapping = entry.get("mapping") or {}
        if not isinstance(mapping, dict):
            raise ConfigError("PURGEBRIDGE_SITES_FILE", path, f"{where}.mapping: expected an object")
        try:
            cms = parse_cms(entry.get("cms"), environ)
        except CMSConfigError as exc:
            raise ConfigError("PURGEBRIDGE_SITES_FILE", path, f"{where}.{exc}") from None
        sites.append(Site(host=host, secret=secret, mapping=mapping, cms=cms))
    return sites


def load_sites(settings: Settings, environ: Optional[Mapping[str, str]] = None) -> Sites:
    """Merge ``settings.sites`` and ``settings.sites_file`` into :class:`Sites`."""
    environ = os.environ if environ is None else environ
    sites: List[Site] = []
    for text in settings.sites:
        try:
            sites.append(Site(host=normalise_host(text)))
        except InvalidURL as exc:
            raise ConfigError("PURGEBRIDGE_SITES", ",".join(settings.sites), f"{text!r}: {exc.reason}") from None
    if settings.sites_file:
        from_file = _read_file(settings.sites_file, environ)
        listed = {site.host for site in from_file}
        sites = [site for site in sites if site.host not in listed] + from_file
    return Sites(sites, global_secret=settings.secret)
