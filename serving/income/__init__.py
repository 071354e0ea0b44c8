"""Income management: receipts in suspense and the DWP's payment schedules (cash application, schedule
reconciliation, the schedule lines the cash forecast expects)."""
