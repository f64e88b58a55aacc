"""The ``purgebridge`` command: one click group, a sub-command per job.
"""


from purgebridge.cli.commands import main

__all__ = ["main"]
