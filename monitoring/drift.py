"""Feature drift: the champion's training reference versus the latest snapshot, as an Evidently report.

Monitoring only reads what the other stages wrote (the reference sample saved at training, the offline snapshots)
and writes reports; nothing imports it. Results are read by metric type and column name, never by position.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    method: str
    score: float
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class DriftResult:
    html: Path
    json: Path
    summary: Path
    drifted_share: float
    columns: list[ColumnDrift]

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]


def _is_drifted(method: str, score: float, threshold: float) -> bool:
    # Statistical tests report a p-value (drift when small); distances report a distance (drift when large).
    return score < threshold if "p_value" in method.lower() else score >= threshold


def read_drift(report: dict) -> tuple[float, list[ColumnDrift]]:
    """Pull the drifted share and each column's drift out of an Evidently 0.7 report dict, by name."""
    share = float("nan")
    columns = []
    for metric in report["metrics"]:
        config = metric["config"]
        kind = config.get("type", "")
        if kind.endswith("DriftedColumnsCount"):
            share = float(metric["value"]["share"])
        elif kind.endswith("ValueDrift"):
            score, threshold, method = float(metric["value"]), float(config["threshold"]), str(config["method"])
            drifted = _is_drifted(method, score, threshold)
            columns.append(ColumnDrift(config["column"], method, score, threshold, drifted))
    return share, columns


def drift_report(
    reference: pd.DataFrame, current: pd.DataFrame, columns: list[str], out_dir: Path, name: str = "drift"
) -> DriftResult:
    """Run Evidently's data-drift preset on `columns` and write HTML, the raw JSON and our own summary JSON."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=list(columns))
    snapshot = Report([DataDriftPreset(columns=list(columns))]).run(
        current_data=Dataset.from_pandas(current[columns].reset_index(drop=True), data_definition=definition),
        reference_data=Dataset.from_pandas(reference[columns].reset_index(drop=True), data_definition=definition),
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    html, raw_json, summary_json = out_dir / f"{name}.html", out_dir / f"{name}.json", out_dir / f"{name}_summary.json"
    snapshot.save_html(str(html))
    snapshot.save_json(str(raw_json))
    share, per_column = read_drift(snapshot.dict())
    summary_json.write_text(json.dumps({
        "drifted_share": share,
        "drifted_columns": [c.column for c in per_column if c.drifted],
        "columns": [asdict(c) for c in per_column],
        "reference_rows": len(reference),
        "current_rows": len(current),
    }, indent=2))
    return DriftResult(html, raw_json, summary_json, share, per_column)
