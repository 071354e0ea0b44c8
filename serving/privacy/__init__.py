"""Tenants' privacy rights: what is held about a tenancy and its export, erasure (a keyed pseudonym everywhere),
restriction, who looked (the access log), and the retention schedule (docs/privacy.md)."""
