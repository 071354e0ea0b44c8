"""Drift of features and scores as an Evidently report, kept over time in an Evidently workspace.

Monitoring only reads what the other stages wrote and writes reports; nothing imports it. Results are read by
metric type and column name, never by position. Each feature gets Evidently's default test for its size and type;
the score (when given) gets the population stability index (PSI), the figure credit-risk teams read for score
drift (under 0.1 stable, 0.1-0.2 moved, over 0.2 a shift to act on). Every report is also added to an Evidently
workspace under ARREARS_HOME (`evidently ui --workspace DIR` shows the trend of every metric over runs).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

# Evidently (13 s to import) is imported where a report is made: `monitoring.jobs` imports this module for every
# job, and only the drift job makes one.


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
    score: ColumnDrift | None = None  #: the score's PSI, when a score column was compared

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


#: PSI above this is a shift of the score distribution (the usual reading: < 0.1 stable, 0.1-0.2 moved).
SCORE_PSI_THRESHOLD = 0.2


def drift_report(
    reference: pd.DataFrame, current: pd.DataFrame, columns: list[str], out_dir: Path, name: str = "drift",
    score_column: str | None = None, workspace: Path | None = None, timestamp: pd.Timestamp | None = None,
) -> DriftResult:
    """Run Evidently's data-drift preset on `columns` (and PSI on `score_column`), write HTML, the raw JSON and
    our own summary JSON, and add the report to the Evidently `workspace` if one is given."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    compared = [*columns, *([score_column] if score_column else [])]
    definition = DataDefinition(numerical_columns=compared)
    metrics = [DataDriftPreset(columns=list(columns))]
    if score_column:
        metrics.append(ValueDrift(column=score_column, method="psi", threshold=SCORE_PSI_THRESHOLD))
    snapshot = Report(metrics).run(
        current_data=Dataset.from_pandas(current[compared].reset_index(drop=True), data_definition=definition),
        reference_data=Dataset.from_pandas(reference[compared].reset_index(drop=True), data_definition=definition),
        timestamp=None if timestamp is None else pd.Timestamp(timestamp).to_pydatetime(), name=name,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    html, raw_json, summary_json = out_dir / f"{name}.html", out_dir / f"{name}.json", out_dir / f"{name}_summary.json"
    snapshot.save_html(str(html))
    snapshot.save_json(str(raw_json))
    share, per_column = read_drift(snapshot.dict())
    score = next((c for c in per_column if c.column == score_column), None)
    per_column = [c for c in per_column if c.column != score_column]
    summary_json.write_text(json.dumps({
        "drifted_share": share,
        "drifted_columns": [c.column for c in per_column if c.drifted],
        "columns": [asdict(c) for c in per_column],
        "score": asdict(score) if score else None,
        "reference_rows": len(reference),
        "current_rows": len(current),
    }, indent=2))
    if workspace is not None:
        keep_in_workspace(workspace, name, snapshot)
    return DriftResult(html, raw_json, summary_json, share, per_column, score)


def keep_in_workspace(folder: Path, project: str, snapshot) -> None:
    """Add a report to the Evidently workspace in `folder` (one project per report name), so the history of every
    metric can be seen over time in Evidently's own UI (`evidently ui --workspace folder`)."""
    from evidently.ui.workspace import Workspace

    workspace = Workspace.create(str(folder))
    found = workspace.search_project(project)
    target = found[0] if found else workspace.create_project(project, description=f"arrears {project} reports")
    workspace.add_run(target.id, snapshot, include_data=False)
