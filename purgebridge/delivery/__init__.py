"""Getting invalidations onto the nodes: the pipelined HTTP/1.1 client (``transport``) and the
fan-out of a batch to every node with its result per node (``fanout``). Imports only ``core``.
"""

