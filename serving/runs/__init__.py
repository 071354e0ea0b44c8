"""Worklist runs: every live tenancy scored, judged by the readiness policy, explained and recorded; the served
worklist and scores; what changed between runs; a run's casework; and the log of scheduled job runs."""
