"""Fixtures for the Flask app (filled in by the service work)."""
