"""purgebridge: tell every Varnish node when content changes.

The package is laid out by process and layer (docs/architecture.md): ``core`` (the domain, no
dependencies), ``config``, ``store``, ``delivery`` and ``telemetry`` on top of it, then the two
processes ``api`` and ``worker``, ``service`` (``purgebridge serve``) over both, and ``audit``,
``cli`` and ``testing`` (the local cluster and the demo) at the top.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
