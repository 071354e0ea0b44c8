"""service tier (see tests/conftest.py)."""
