"""Monitoring jobs: read what training, the feature stage and the worklist runs wrote; write reports under
`reports_dir/monitoring/<job>/<date>/`; say which alert thresholds the results breach.

Each job returns a `JobResult` (`monitoring.findings`): its outputs (paths and headline figures, recorded with the
job run) and its breaches (recorded as alerts by the scheduler in `arrears.schedule`). Thresholds come from the
schedule's config (`Thresholds`); a job never decides what a person is told, only what it found.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.protected import monitoring_attributes
from monitoring.bias import ATTRIBUTES, served_bias, write_bias_report
from monitoring.cash import accuracy_by_horizon, forecast_accuracy, write_cash_report
from monitoring.datasets import DriftInputs, champion_drift_inputs, like_with_like_inputs
from monitoring.drift import DriftResult, drift_report
from monitoring.findings import Breach, JobResult, Thresholds
from monitoring.outcomes import ledger_end, matured_risk_labels, read_outcome_ledger, risk_label_spec, risk_matured
from monitoring.performance import performance_history, write_performance_report
from serving.runs.store import open_runs
from serving.settings import ServingSettings
from training.evaluate import auc_standard_error


def report_dir(settings: ServingSettings, job: str, day: pd.Timestamp) -> Path:
    return settings.reports_dir / "monitoring" / job / str(pd.Timestamp(day).date())


def workspace_dir(settings: ServingSettings) -> Path:
    """The Evidently workspace that keeps every report's history (`evidently ui --workspace <this>`)."""
    return settings.home / "evidently"


def feature_drift(settings: ServingSettings) -> DriftResult:
    """Drift of the champion's features: its training reference versus the current snapshot being served."""
    inputs = champion_drift_inputs(settings)
    return drift_report(inputs.reference, inputs.current, inputs.columns, settings.reports_dir, name="feature_drift")


def _segment_drift(settings: ServingSettings, inputs: DriftInputs, thresholds: Thresholds,
                   out: Path) -> tuple[list[dict], list[Breach]]:
    """The drift report within each group of `thresholds.drift_segments` (register columns, never model inputs) of
    at least `segment_min_rows` live tenancies, and a `segment_drift` breach for each whose drifted share and score
    PSI both pass their thresholds; smaller groups are listed with their size, not judged (their PSI moves by
    0.2-0.5 from noise alone, and each report costs seconds). The groups' reports are files, not
    added to the Evidently workspace: its local form reloads every kept report each time it is opened (5 MB a
    report: ten groups a week made opening it take minutes within months); their figures stay in the job log."""
    ids = sorted(set(inputs.current["tenancy_id"]) | set(inputs.reference["tenancy_id"]))
    groups = monitoring_attributes(settings, ids, thresholds.drift_segments).set_index("tenancy_id")
    summaries, breaches = [], []
    for attribute in groups.columns:
        current_group = inputs.current["tenancy_id"].map(groups[attribute])
        reference_group = inputs.reference["tenancy_id"].map(groups[attribute])
        for value, rows in current_group.value_counts().sort_index().items():
            current, reference = inputs.current[current_group == value], inputs.reference[reference_group == value]
            name = f"{attribute}={value}"
            if min(rows, len(reference)) < thresholds.segment_min_rows:  # listed, not judged: noise would alert
                summaries.append({"segment": name, "rows": int(rows), "can_alert": False, "note": "fewer than "
                                  f"{int(thresholds.segment_min_rows)} live tenancies (now or then): not judged"})
                continue
            result = drift_report(reference, current, inputs.columns, out / "segments", name=f"drift_{name}",
                                  score_column="risk_score", timestamp=inputs.current_date)
            psi = result.score.score if result.score else float("nan")
            summaries.append({"segment": name, "rows": int(rows), "drifted_share": result.drifted_share,
                              "score_psi": psi, "html": str(result.html), "can_alert": True})
            if result.drifted_share > thresholds.drift_share and psi > thresholds.score_psi:
                breaches.append(Breach(
                    "segment_drift", f"{name} ({rows} live tenancies): {result.drifted_share:.0%} of the model's "
                    f"features drifted and the risk score's PSI is {psi:.3f} against the same weekday 4-7 weeks "
                    f"earlier ({', '.join(result.drifted_columns[:4])})", result.drifted_share, thresholds.drift_share))
    return summaries, breaches


def drift_job(settings: ServingSettings, thresholds: Thresholds, as_of: pd.Timestamp | None = None) -> JobResult:
    """Weekly drift, like with like: features and the risk score on the served date versus the same weekday
    4-7 weeks earlier (`monitoring.datasets.like_with_like_inputs`), for the whole portfolio and within each
    group of `thresholds.drift_segments`. `as_of`: judge an earlier day instead (the served one by default)."""
    inputs = like_with_like_inputs(settings, as_of=as_of)
    out = report_dir(settings, "drift", inputs.current_date)
    result = drift_report(inputs.reference, inputs.current, inputs.columns, out, name="drift",
                          score_column="risk_score", workspace=workspace_dir(settings),
                          timestamp=inputs.current_date)
    psi = result.score.score if result.score else float("nan")
    segments, breaches = _segment_drift(settings, inputs, thresholds, out)
    outputs = {"html": str(result.html), "summary": str(result.summary), "as_of": str(inputs.current_date.date()),
               "reference_dates": [str(d.date()) for d in inputs.reference_dates],
               "model_version": inputs.model_version, "drifted_share": result.drifted_share,
               "drifted_columns": result.drifted_columns, "score_psi": psi,
               "current_rows": len(inputs.current), "reference_rows": len(inputs.reference), "segments": segments}
    if result.drifted_share > thresholds.drift_share:
        named = ", ".join(result.drifted_columns[:6]) + ("…" if len(result.drifted_columns) > 6 else "")
        breaches.append(Breach(
            "feature_drift", f"{result.drifted_share:.0%} of the model's features drifted against the same weekday "
            f"4-7 weeks earlier ({named})", result.drifted_share, thresholds.drift_share))
    if psi > thresholds.score_psi:
        breaches.append(Breach("score_drift", f"risk score PSI {psi:.3f} against the same weekday 4-7 weeks earlier",
                               psi, thresholds.score_psi))
    return JobResult(outputs, breaches)


def _latest_matured_run(settings: ServingSettings, store) -> tuple[dict, pd.DataFrame, pd.DataFrame] | None:
    """The newest recorded run whose outcomes have matured: (run, its rows, its labels), or None. The ledger's
    transactions are read only when there is one."""
    spec, end = risk_label_spec(), ledger_end(settings)
    for run in reversed(store.runs().to_dict("records")):
        as_of = pd.Timestamp(run["as_of"]).date()
        if risk_matured(as_of, end, spec):
            rows = store.rows(run["run_id"])
            return run, rows, matured_risk_labels(settings, as_of, rows["tenancy_id"])
    return None


def bias_job(settings: ServingSettings, thresholds: Thresholds) -> JobResult:
    """Weekly bias on what is served (`monitoring.bias`): the latest run's shares of the ready list and of the
    top-capacity cases per group; on the newest run whose outcomes have matured, need, recall, precision and
    calibration per group, with flags only where the confidence bound clears its threshold."""
    with open_runs(settings) as store:
        latest = store.latest()
        rows = store.rows(latest["run_id"])
        matured = _latest_matured_run(settings, store)
    every = set(rows["tenancy_id"]) | (set(matured[1]["tenancy_id"]) if matured else set())
    groups = monitoring_attributes(settings, sorted(every), ATTRIBUTES)  # one read for both reports
    capacity = int(latest["patch_capacity"])
    out = report_dir(settings, "bias", pd.Timestamp(latest["as_of"]))
    served = served_bias(rows, groups[groups["tenancy_id"].isin(rows["tenancy_id"])], capacity)
    json_path, html_path = write_bias_report(served, out, name="bias_served")
    outputs = {"as_of": str(latest["as_of"]), "run_id": latest["run_id"], "served_html": str(html_path),
               "served_json": str(json_path), "matured_run": None, "flags": []}
    if matured is None:
        outputs["note"] = "no recorded run has matured outcomes yet: need, recall and calibration wait for them"
        return JobResult(outputs)
    run, m_rows, labels = matured
    report = served_bias(m_rows, groups[groups["tenancy_id"].isin(m_rows["tenancy_id"])], int(run["patch_capacity"]),
                         need=labels.rename(columns={"label": "grew"}), labels=labels)
    json_path, html_path = write_bias_report(report, out, name="bias_matured")
    flags = [f.message for f in report.flags]
    outputs |= {"matured_run": run["run_id"], "matured_as_of": str(run["as_of"]), "matured_html": str(html_path),
                "matured_json": str(json_path), "flags": flags,
                "flagged_groups": [f"{f.attribute}={f.group}" for f in report.flags]}
    breaches = [Breach("bias", f"{len(flags)} group finding(s) on the run of {run['as_of']}: " + "; ".join(flags),
                       float(len(flags)), thresholds.bias_flags)] if len(flags) >= thresholds.bias_flags else []
    return JobResult(outputs, breaches)


def _performance_breaches(last: pd.Series, thresholds: Thresholds) -> list[Breach]:
    """The newest matured run against its model version's training-time test AUC, and against what its own
    calibrated probabilities expected. An AUC drop counts only as far as it is sure: the drop less 1.96 standard
    errors of the run's AUC (Hanley & McNeil, on its positives and negatives), so a week of a few dozen positives
    does not raise a false alarm (a 26-week replay with no change showed drops of up to 0.08 from noise alone)."""
    breaches = []
    positives = float(last["positives"])
    se = auc_standard_error(float(last["auc"]), positives, float(last["rows"]) - positives)
    drop = float(last["training_auc"]) - float(last["auc"])
    if drop - 1.96 * se > thresholds.auc_drop:
        breaches.append(Breach("performance_drop", f"the run of {last['as_of']:%Y-%m-%d} (model version "
                               f"{last['model_version']}) reached AUC {last['auc']:.3f} on its matured outcomes, "
                               f"{drop:.3f} below its training-time test AUC {last['training_auc']:.3f} (at least "
                               f"{drop - 1.96 * se:.3f} with 97.5% confidence)", drop - 1.96 * se, thresholds.auc_drop))
    short = float(last["estimated_precision_at_top_k"]) - float(last["precision_at_top_k"])
    if short > thresholds.precision_drop:
        breaches.append(Breach("precision_shortfall", f"the run of {last['as_of']:%Y-%m-%d}: precision at the top "
                               f"{int(last['list_size'])} cases was {last['precision_at_top_k']:.3f} against "
                               f"{last['estimated_precision_at_top_k']:.3f} its calibrated probabilities expected",
                               short, thresholds.precision_drop))
    return breaches


def _cash_accuracy(settings: ServingSettings, out: Path, ledger) -> dict:
    """The recorded cash forecasts against the receipts that came in (`monitoring.cash`): the report's paths and,
    by weeks ahead, the portfolio's WAPE (model and baseline) and P10–P90 coverage over the matured weeks."""
    table = forecast_accuracy(settings, ledger)
    if table.empty:
        return {"cash_forecasts": 0}
    html_path, json_path = write_cash_report(table, out)
    by_week = accuracy_by_horizon(table)
    return {"cash_html": str(html_path), "cash_json": str(json_path), "cash_forecasts": table["forecast_id"].nunique(),
            "cash_matured_weeks": int(by_week["weeks_judged"].sum()) if len(by_week) else 0,
            "cash_by_week": by_week.round(4).to_dict("records")}


def performance_job(settings: ServingSettings, thresholds: Thresholds) -> JobResult:
    """Weekly performance of every recorded run (`monitoring.performance`): measured on matured outcomes against
    the balance baseline on the same rows, estimated from the calibrated probabilities before; alerts on the
    newest matured run; and the recorded cash forecasts, week by week, against the receipts that came in."""
    ledger = read_outcome_ledger(settings)  # once, for the runs and the forecasts
    history = performance_history(settings, ledger)
    if history.empty:
        return JobResult({"note": "no worklist run recorded yet"})
    out = report_dir(settings, "performance", history["as_of"].max())
    html_path, json_path = write_performance_report(history, out)
    matured = history[history["matured"].fillna(False).astype(bool)]
    outputs = {"html": str(html_path), "json": str(json_path), "runs": len(history), "matured_runs": len(matured),
               "latest_as_of": str(history["as_of"].max().date()),
               "latest_estimated_precision_at_top_k": history["estimated_precision_at_top_k"].iloc[-1],
               **_cash_accuracy(settings, out, ledger)}
    if matured.empty:
        return JobResult(outputs | {"note": "no run has matured outcomes yet: the figures are estimates"})
    last = matured.iloc[-1]
    outputs |= {f"matured_{k}": (float(last[k]) if pd.notna(last[k]) else None)
                for k in ("auc", "auc_balance_baseline", "precision_at_top_k", "precision_at_top_k_balance_baseline",
                          "estimated_precision_at_top_k", "calibration_error", "training_auc", "p10_p90_coverage")}
    outputs["matured_as_of"] = str(last["as_of"].date())
    return JobResult(outputs, _performance_breaches(last, thresholds))
