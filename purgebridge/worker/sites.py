"""The sites the worker serves and their mapping options, read from the settings once.

The expander needs each site's ``MappingOptions`` for every event and the
housekeeping needs the list of sites for its dead-letter bans: both read
this one cache, so the sites settings are loaded once per worker process
(they cannot change without a restart).
"""

import threading
from typing import Any, Callable, Dict, List, Optional


class SiteCache:
    """``options_for(host)`` and ``hosts``, built lazily from the settings; ``mapping_options`` overrides."""

    def __init__(self, settings: Any, mapping_options: Optional[Callable[[str], Any]] = None) -> None:
        self.settings = settings
        self.mapping_options = mapping_options  # host -> MappingOptions (tests); else from the sites settings
        self._sites: Any = None
        self._options: Dict[str, Any] = {}
        self._lock = threading.Lock()

    def _loaded(self) -> Any:
        if self._sites is None:
            from purgebridge.config.sites import load_sites

            with self._lock:
                if self._sites is None:
                    self._sites = load_sites(self.settings)
        return self._sites

    @property
    def hosts(self) -> List[str]:
        return list(self._loaded().hosts)

    def options_for(self, host: str) -> Any:
        """The site's mapping options (an unlisted host gets the global ones)."""
        if self.mapping_options is not None:
            return self.mapping_options(host)
        options = self._options.get(host)
        if options is None:
            options = self._options[host] = self._loaded().mapping_options(host, self.settings)
        return options
