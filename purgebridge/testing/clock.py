"""A clock that moves only when a test says so, for the worker's timing rules (gap, backoff)."""


class FakeClock:
    """``time()`` and ``monotonic()`` as the ``time`` module has them, advanced by :meth:`advance`.

    The worker and its node senders take any object with these two methods
    as ``clock`` (the ``time`` module by default), so a test can step through
    a backoff or a batch gap without sleeping.
    """

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.wall = start
        self.mono = 1_000.0

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds
