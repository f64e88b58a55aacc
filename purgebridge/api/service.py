"""What the api's routes share, one per app: settings, sites, queue, metrics, the worker's status view.

Built by ``app.create_app`` and kept on ``app.extensions["purgebridge"]``, so
routes never reach for globals and tests can build as many apps as they like.
"""

from dataclasses import dataclass, field
import time
from typing import Dict, Optional

from purgebridge.config.settings import Settings
from purgebridge.config.sites import Sites
from purgebridge.core.mapping import MappingOptions
from purgebridge.store import Store
from purgebridge.telemetry.metrics import Metrics
from purgebridge.worker.status import WorkerView


@dataclass
class Service:
    """Everything the routes need; one per app."""

    settings: Settings
    sites: Sites
    queue: Store
    metrics: Metrics
    worker: Optional[WorkerView] = None  # the worker process's status file; None: nothing expands (tests)
    options: Dict[str, MappingOptions] = field(default_factory=dict)  # by host
    started_at: float = field(default_factory=time.time)
    owns_queue: bool = False

    def mapping_options(self, host: str) -> MappingOptions:
        if host not in self.options:
            self.options[host] = self.sites.mapping_options(host, self.settings)
        return self.options[host]

    def close(self) -> None:
        """Close the queue (if this app opened it)."""
        if self.owns_queue:
            self.queue.close()
