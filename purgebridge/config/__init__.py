"""Settings and where they come from: environment, ``.env`` and flags (``settings``), the tenants
(``sites``) and the nodes read out of a VCL ``acl`` (``vcl_acl``). Imports only ``core``.
"""

