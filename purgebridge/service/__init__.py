"""``purgebridge serve``: the supervising process that binds the socket and runs the API process and the
worker process.
"""

