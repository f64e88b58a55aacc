"""Fixtures for real varnishd clusters (filled in by the cluster work)."""
