"""Readiness policy, pure: a tenancy's facts and a date → one readiness state, the rules that fired, the next
action (docs/policy.md). Used by the worklist and, later, by approvals alike."""

from casework.policy.rules import QUEUES, STATES, readiness
from casework.policy.settings import Policy, load_policy, read_policy

__all__ = ["QUEUES", "STATES", "Policy", "load_policy", "read_policy", "readiness"]
