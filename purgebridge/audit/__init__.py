"""``purgebridge audit``: every node's cached copy of a page compared with what the origin serves now.
"""

