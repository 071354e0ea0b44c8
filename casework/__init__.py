"""Casework: what may be done about a case and, later, who does it. `casework.policy` holds the readiness rules
(pure); `casework.facts` reads what they judge from the ledger."""
