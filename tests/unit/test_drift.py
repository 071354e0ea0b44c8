"""Drift reports through the real Evidently: a shifted feature is flagged, a stable one is not."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from monitoring.drift import drift_report


def test_shifted_column_is_flagged_and_stable_one_is_not(tmp_path) -> None:
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"balance": rng.normal(100, 50, 3000), "arrears_weeks": rng.exponential(1, 3000)})
    current = pd.DataFrame({"balance": rng.normal(100, 50, 2000), "arrears_weeks": rng.exponential(1, 2000) + 2})
    result = drift_report(reference, current, ["balance", "arrears_weeks"], tmp_path, name="d")
    assert result.drifted_columns == ["arrears_weeks"]
    assert result.drifted_share == 0.5
    assert result.html.exists() and result.html.stat().st_size > 10_000
    summary = json.loads(result.summary.read_text())
    assert summary["drifted_columns"] == ["arrears_weeks"] and summary["current_rows"] == 2000
    raw = json.loads(result.json.read_text())
    assert any("ValueDrift" in m["metric_name"] for m in raw["metrics"])
