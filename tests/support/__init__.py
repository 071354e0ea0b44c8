"""Helpers shared by the test tiers (deliveries, Postgres schemas, the CLI, isolated homes). Not tests."""
