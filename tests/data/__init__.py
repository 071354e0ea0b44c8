"""data tier (see tests/conftest.py)."""
