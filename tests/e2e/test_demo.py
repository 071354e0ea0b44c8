"""`arrears demo` as `make demo` runs it (a real subprocess), twice in the same home, then the verbs a user types
next."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from features.ledger import open_ledger


def test_demo_runs_twice_then_worklist_and_info_work(tmp_path) -> None:
    env = {"ARREARS_HOME": str(tmp_path / "demo_home"), "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"}
    arrears = str(Path(sys.executable).with_name("arrears"))
    for attempt in (1, 2):
        done = subprocess.run([arrears, "demo", "--tenancies", "400", "--top", "30"], env=env, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, f"demo run {attempt} failed:\n{done.stdout}\n{done.stderr}"
        assert "worklist (CSV)" in done.stdout and "drift report" in done.stdout and "bias report" in done.stdout
    worklist = subprocess.run([arrears, "worklist", "--top", "20", "--json"], env=env, capture_output=True, text=True)
    assert worklist.returncode == 0, worklist.stderr
    rows = json.loads(worklist.stdout)["rows"]
    assert len(rows) == 20 and rows[0]["rank"] == 1
    info = json.loads(subprocess.run([arrears, "info", "--json"], env=env, capture_output=True, text=True).stdout)
    for name in ("worklist.csv", "cash_forecast.csv", "expected_payments.csv", "collection_kpis.csv"):
        assert Path(info["reports_dir"], name).exists(), name
    status = subprocess.run([arrears, "monitor", "status", "--json"], env=env, capture_output=True, text=True)
    latest = {j["job"]: (j["last_run"] or {}).get("status") for j in json.loads(status.stdout)["jobs"]}
    assert latest == {"refresh": None, "drift": "succeeded", "bias": "succeeded", "performance": "succeeded",
                      "retrain": None}, latest
    with open_ledger(info["ledger"]) as ledger:
        assert ledger.counts()["deliveries"] == 1  # the second run found the same files already ingested
        assert ledger.query("SELECT COUNT(DISTINCT transaction_id) AS n FROM transactions")["n"].iloc[0] == \
            ledger.counts()["transactions"]
