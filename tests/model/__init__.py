"""model tier (see tests/conftest.py)."""
