"""purgebridge: tell every Varnish node when content changes.

The package is a set of small modules, each with one job:

- ``config``     -- every setting, its default, and the precedence of sources
- ``vclacl``     -- reads the nodes out of a VCL ``acl`` block
- ``urls``       -- validates URLs and turns them into request target + Host
- ``transport``  -- a pipelined HTTP/1.1 client: many requests in flight per socket
- ``fanout``     -- sends a batch of PURGE/BAN requests to every node, classifies results
- ``cli``        -- the ``purgebridge`` command
"""

__version__ = "0.1.0"
