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
        assert "http://127.0.0.1:3000/app/" in done.stdout
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
                      "experiments": None, "retrain": None, "retention": None}, latest
    _the_printed_sign_ins_work(done.stdout, env)
    with open_ledger(info["ledger"]) as ledger:
        assert ledger.counts()["deliveries"] == 1  # the second run found the same files already ingested
        assert ledger.query("SELECT COUNT(DISTINCT transaction_id) AS n FROM transactions")["n"].iloc[0] == \
            ledger.counts()["transactions"]


def _the_printed_sign_ins_work(said: str, env: dict) -> None:
    """The demo's last table: a token per role, each (from the second run) signing in as its role; the first run's
    were revoked."""
    import re

    from serving.access.principals import open_principals
    from serving.settings import get_settings
    from tests.support.homes import isolated_home

    tokens = dict(re.findall(r"(officer|supervisor|treasury|data_scientist|admin)\s.*?(arr_[\w-]{20,})", said))
    assert set(tokens) == {"officer", "supervisor", "treasury", "data_scientist", "admin"}, said[-3000:]
    with isolated_home(Path(env["ARREARS_HOME"])), open_principals(get_settings()) as store:
        assert {role: store.authenticate(token).role for role, token in tokens.items()} == {r: r for r in tokens}
        assert len(store.active()) == 5  # one per role: the first run's tokens are revoked
