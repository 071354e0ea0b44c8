"""How well the served worklist runs ranked, judged on what really happened next (issue 12).

Every recorded worklist run (`serving.runs.store`) scored every live tenancy as of its date. Once the ledger holds the
label horizon after that date (`monitoring.outcomes`), the run is *matured* and measured with the metrics training
uses (`training.evaluate`, `training.payment_date`): AUC, precision and captured share at the officers' capacity,
calibration, the highest-balance-first baseline on the same rows, and the payment model's P10–P90 coverage and P50
error. Before that, only what the calibrated probabilities expect can be said; those figures are all named
`estimated_…`, so nobody takes them for measured ones.

Capacity is measured two ways (both with k = the number of cases on the run's lists):
- `…_at_capacity`: the lists as served: `ready` cases within each patch's capacity (`queue_rank <= capacity`);
  its balance baseline is the same rule with the `ready` cases of each patch ordered by balance instead;
- `…_at_top_k`: the portfolio-wide top k by risk (`risk_rank`), whatever their readiness; its balance baseline
  is the top k by balance. This one is comparable with training's `precision_at_capacity` (also a top share of
  every live tenancy), though training's k is a fixed share of the caseload.

`performance_history` measures every recorded run (the ledger read once) and `write_performance_report` writes it
as JSON and a readable HTML page.

Not here yet: the cash forecast's WAPE against the receipts that came in (also issue 12) needs the history of
served forecasts, which is not recorded until issue 13.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from monitoring.outcomes import (
    OutcomeLedger,
    matured_payment_outcomes,
    matured_risk_labels,
    payment_label_spec,
    read_outcome_ledger,
    risk_label_spec,
)
from serving.runs.store import open_runs
from serving.settings import ServingSettings
from training import registry
from training.evaluate import at_capacity, baseline_scores, probability_metrics, ranking_metrics
from training.payment_date import payment_metrics

# matplotlib is imported when a chart is drawn (`_pyplot`), its display-less backend chosen before pyplot loads;
# mlflow's exception inside `training_aucs`, as in training.registry (ruff takes this repository's mlflow/ folder,
# the local tracking store, for a project package and would file it among the project's imports).

#: The readiness state whose cases are listed for outreach (`casework.policy.STATES`: what is left when no rule
#: fires).
READY = "ready"
QUANTILE_COLUMNS = {"payment_p10": "p10", "payment_p50": "p50", "payment_p90": "p90"}
#: What each history column means (the HTML report's glossary).
MEANINGS: dict[str, str] = {
    "as_of": "the date the run scored its tenancies as of",
    "matured": "whether the ledger holds the whole risk label horizon after as_of (measured metrics exist)",
    "rows": "tenancies judged (matured: those with a label; else every row of the run)",
    "list_size": "k: cases on the run's lists (ready, within each patch's capacity)",
    "positives": "tenancies whose arrears did grow within the horizon",
    "auc": "AUC of the risk score on every judged tenancy (measured)",
    "estimated_auc": "the AUC expected if the calibrated probabilities were exactly right",
    "auc_balance_baseline": "AUC of highest-balance-first on the same tenancies",
    "training_auc": "the AUC the model version's training run measured on its test weeks (MLflow)",
    "precision_at_capacity": "share of the listed cases whose arrears grew (measured)",
    "estimated_precision_at_capacity": "mean predicted probability of the listed cases",
    "precision_at_capacity_balance_baseline": "the same lists drawn by balance instead of risk",
    "captured_at_capacity": "share of all tenancies whose arrears grew that were on the lists",
    "precision_at_top_k": "share of the portfolio-wide top k by risk whose arrears grew",
    "estimated_precision_at_top_k": "mean predicted probability of the top k by risk",
    "precision_at_top_k_balance_baseline": "the same for the top k by balance",
    "calibration_error": "expected calibration error: |observed − predicted| over 10 equal-count bins, weighted",
    "p10_p90_coverage": "share of matured payment outcomes inside the predicted P10–P90 interval",
    "p50_mae_days": "mean absolute error of the P50 payment day, on payments that came within the horizon",
}


# -- one run ---------------------------------------------------------------------------------------------------------
def listed(rows: pd.DataFrame, capacity: int, score: str = "risk") -> pd.Series:
    """Which rows are on the run's lists: `ready`, within each patch's `capacity`, highest risk first (the served
    `queue_rank`), or with `score="balance"` highest balance first (the baseline's lists)."""
    ready = rows["readiness_state"] == READY
    if score == "risk":
        return ready & (rows["queue_rank"] <= capacity)
    order = rows[ready].assign(_balance=_balance_score(rows[ready])).sort_values(
        ["_balance", "tenancy_id"], ascending=[False, True], kind="stable")
    rank = order.groupby("patch", sort=False).cumcount() + 1
    return pd.Series(rows.index.isin(rank.index[rank <= capacity]), index=rows.index)


def _balance_score(rows: pd.DataFrame) -> pd.Series:
    """Highest balance first, exactly as training scores its balance baseline (the other baselines' inputs are not
    recorded with a run, so they are left empty)."""
    return baseline_scores(rows.assign(arrears_weeks=np.nan, weeks_since_clear=np.nan))["balance"]


def _one_date(frame: pd.DataFrame) -> pd.DataFrame:
    """`training.evaluate` averages over as_of dates; a run has one."""
    return frame.assign(event_timestamp=0)


def _list_metrics(frame: pd.DataFrame, on_list: str) -> tuple[float, float]:
    """(precision, captured) of the rows flagged in `on_list`: the top k by the flag is exactly those rows."""
    k = int(frame[on_list].sum())
    if k == 0:
        return float("nan"), float("nan")
    return at_capacity(_one_date(frame.assign(_flag=frame[on_list].astype(float))), "_flag", capacity=k / len(frame))


def _top_k_metrics(frame: pd.DataFrame, score: str, k: int, suffix: str = "") -> dict[str, float]:
    metrics = ranking_metrics(_one_date(frame), score, capacity=k / len(frame)) if k else {
        "auc": np.nan, "pr_auc": np.nan, "precision_at_capacity": np.nan, "captured_at_capacity": np.nan}
    return {f"auc{suffix}": metrics["auc"], f"pr_auc{suffix}": metrics["pr_auc"],
            f"precision_at_top_k{suffix}": metrics["precision_at_capacity"],
            f"captured_at_top_k{suffix}": metrics["captured_at_capacity"]}


def run_performance(rows: pd.DataFrame, labels: pd.DataFrame, capacity: int) -> dict:
    """One run measured on its matured labels (tenancy_id, label): the model and highest-balance-first on the same
    rows (the run's rows that have a label). Keys: see the module docstring and `MEANINGS`."""
    frame = rows.assign(_listed=listed(rows, capacity), _balance_listed=listed(rows, capacity, "balance"),
                        _balance=_balance_score(rows)).merge(labels[["tenancy_id", "label"]], on="tenancy_id")
    k = int(frame["_listed"].sum())
    out = {"matured": True, "rows": len(frame), "rows_unlabelled": len(rows) - len(frame), "list_size": k,
           "positives": int(frame["label"].sum()),
           "observed_rate": float(frame["label"].mean()) if len(frame) else float("nan"),
           "mean_predicted": float(frame["risk_score"].mean()) if len(frame) else float("nan")}
    if frame.empty:
        return out
    out |= _top_k_metrics(frame, "raw_score", k)
    out |= dict(zip(("precision_at_capacity", "captured_at_capacity"), _list_metrics(frame, "_listed"),
                    strict=True))
    out |= probability_metrics(frame, "risk_score")  # brier, calibration_error (expected calibration error)
    out |= _top_k_metrics(frame, "_balance", k, suffix="_balance_baseline")
    out |= dict(zip(("precision_at_capacity_balance_baseline", "captured_at_capacity_balance_baseline"),
                    _list_metrics(frame, "_balance_listed"), strict=True))
    return out


def expected_auc(score: Iterable[float], probability: Iterable[float]) -> float:
    """The AUC `score` would have if each case were positive with its `probability`: the expected share of
    (positive, negative) pairs ordered correctly (ties count half), over every pair of distinct cases. With
    probabilities of exactly 0 and 1 it is the ordinary AUC."""
    s, p = np.asarray(score, dtype=float), np.asarray(probability, dtype=float)
    q = 1.0 - p
    _, group = np.unique(s, return_inverse=True)
    q_group = np.bincount(group, weights=q)
    below = np.cumsum(q_group) - q_group  # negative weight of the lower scores
    correct = np.sum(p * (below[group] + 0.5 * (q_group[group] - q)))
    pairs = p.sum() * q.sum() - np.sum(p * q)
    return float(correct / pairs) if pairs > 0 else float("nan")


def estimated_performance(rows: pd.DataFrame, capacity: int) -> dict:
    """What a run's calibrated probabilities expect before its labels mature: every figure `estimated_…`."""
    p = rows["risk_score"].astype(float)
    on_list = listed(rows, capacity).to_numpy()
    k = int(on_list.sum())
    top = rows["risk_rank"].rank(method="first").to_numpy() <= k
    total = float(p.sum())
    return {
        "matured": False, "rows": len(rows), "list_size": k,
        "estimated_positives": total,
        "estimated_base_rate": float(p.mean()) if len(rows) else float("nan"),
        "estimated_auc": expected_auc(rows["raw_score"], p),
        "estimated_positives_at_capacity": float(p[on_list].sum()),
        "estimated_precision_at_capacity": float(p[on_list].mean()) if k else float("nan"),
        "estimated_captured_at_capacity": float(p[on_list].sum() / total) if total else float("nan"),
        "estimated_precision_at_top_k": float(p[top].mean()) if k else float("nan"),
        "estimated_captured_at_top_k": float(p[top].sum() / total) if total else float("nan"),
    }


def payment_coverage(rows: pd.DataFrame, outcomes: pd.DataFrame, horizon_days: int) -> dict:
    """The payment-date model on a run's matured outcomes (tenancy_id, duration, event), on the rows that carry a
    prediction (the explained ones): P10–P90 coverage as `training.payment_date.interval_coverage` counts it, and
    the P50's error as `payment_metrics` does. A run records a day beyond the horizon as empty; it is read back as
    beyond the horizon."""
    predicted = rows["reasons"].notna() if "reasons" in rows else rows[list(QUANTILE_COLUMNS)].notna().any(axis=1)
    days = rows.loc[predicted, ["tenancy_id", *QUANTILE_COLUMNS]].rename(columns=QUANTILE_COLUMNS)
    cases = days.merge(outcomes[["tenancy_id", "duration", "event"]], on="tenancy_id")
    out = {"payment_cases": len(cases),
           "payment_cases_known": int(((cases["event"] == 1) | (cases["duration"] >= horizon_days)).sum()),
           "p10_p90_coverage": float("nan"), "p50_mae_days": float("nan"), "p50_within_7_days": float("nan"),
           "paid_within_horizon_rate": float("nan")}
    if cases.empty or not days[list(QUANTILE_COLUMNS.values())].notna().any().any():
        return out  # nothing predicted (no payment model when the run was recorded)
    cases = cases.fillna({column: np.inf for column in QUANTILE_COLUMNS.values()})
    metrics = payment_metrics(cases.assign(naive_days=np.nan, p_within_horizon=np.nan), horizon_days)
    return out | {"p10_p90_coverage": metrics["p10_p90_coverage"], "p50_mae_days": metrics["mae_days"],
                  "p50_within_7_days": metrics["within_7_days"],
                  "paid_within_horizon_rate": metrics["paid_within_horizon_rate"]}


# -- every recorded run ----------------------------------------------------------------------------------------------
HISTORY_COLUMNS = (
    "run_id", "as_of", "recorded_at", "model_version", "payment_model_version", "patch_capacity", "matured",
    "payment_matured", "rows", "rows_unlabelled", "list_size", "positives", "observed_rate", "mean_predicted",
    "estimated_positives", "estimated_base_rate", "estimated_auc", "estimated_positives_at_capacity",
    "estimated_precision_at_capacity", "estimated_captured_at_capacity", "estimated_precision_at_top_k",
    "estimated_captured_at_top_k", "auc", "pr_auc", "precision_at_capacity", "captured_at_capacity",
    "precision_at_top_k", "captured_at_top_k", "brier", "calibration_error", "auc_balance_baseline",
    "pr_auc_balance_baseline", "precision_at_capacity_balance_baseline", "captured_at_capacity_balance_baseline",
    "precision_at_top_k_balance_baseline", "captured_at_top_k_balance_baseline", "training_auc", "payment_cases",
    "payment_cases_known", "p10_p90_coverage", "p50_mae_days", "p50_within_7_days", "paid_within_horizon_rate",
)


def run_record(settings: ServingSettings, run: dict, rows: pd.DataFrame, ledger: OutcomeLedger) -> dict:
    """One history row: the run's versions, what its probabilities expect, and what was measured once matured."""
    capacity, as_of = int(run["patch_capacity"]), pd.Timestamp(run["as_of"]).date()
    record = {key: run.get(key) for key in ("run_id", "recorded_at", "model_version", "payment_model_version",
                                            "patch_capacity")}
    record |= {"as_of": pd.Timestamp(as_of)} | estimated_performance(rows, capacity)
    labels = matured_risk_labels(settings, as_of, rows["tenancy_id"], ledger)
    if labels is not None:
        record |= run_performance(rows, labels, capacity)
    has_payment_model = isinstance(run.get("payment_model_version"), str)
    outcomes = matured_payment_outcomes(settings, as_of, rows["tenancy_id"], ledger) if has_payment_model else None
    record["payment_matured"] = outcomes is not None
    if outcomes is not None:
        record |= payment_coverage(rows, outcomes, payment_label_spec().horizon_days)
    return record


def training_aucs(settings: ServingSettings, versions: Iterable[str]) -> dict[str, float]:
    """The test AUC each risk-model version's training run logged to MLflow (NaN when it cannot be found)."""
    from mlflow.exceptions import MlflowException

    client, found = registry.configure(settings), {}
    for version in {str(v) for v in versions if isinstance(v, str)}:
        try:
            run_id = client.get_model_version(registry.RISK_MODEL, version).run_id
            found[version] = float(client.get_run(run_id).data.metrics.get("auc", np.nan))
        except MlflowException:
            found[version] = float("nan")
    return found


def performance_history(settings: ServingSettings, ledger: OutcomeLedger | None = None) -> pd.DataFrame:
    """One row per recorded run, oldest first (`HISTORY_COLUMNS`): measured metrics where the run has matured,
    estimated ones always. The ledger is read once for every run (or passed in, as already read)."""
    with open_runs(settings) as store:
        runs = store.runs().to_dict("records")
        ledger = (ledger or read_outcome_ledger(settings)) if runs else None
        records = [run_record(settings, run, store.rows(run["run_id"]), ledger) for run in runs]
    history = pd.DataFrame.from_records(records).reindex(columns=list(HISTORY_COLUMNS))
    if not history.empty:
        history["training_auc"] = history["model_version"].map(training_aucs(settings, history["model_version"]))
    history["as_of"] = pd.to_datetime(history["as_of"])
    return history


# -- the report ------------------------------------------------------------------------------------------------------
def _pyplot():
    """matplotlib without a display (imported on first use: nothing happens at import time)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


#: Each panel of the chart: its lines (column, label, matplotlib style) and its y range (None: to fit).
CHART = {
    "AUC": ((("auc", "measured", "-o"), ("estimated_auc", "estimated", "--^"),
             ("auc_balance_baseline", "highest balance first (measured)", ":s"),
             ("training_auc", "training's test weeks", "-.x")), (0.4, 1.0)),
    "precision at capacity (the lists)": (
        (("precision_at_capacity", "measured", "-o"), ("estimated_precision_at_capacity", "estimated", "--^"),
         ("precision_at_capacity_balance_baseline", "highest balance first (measured)", ":s")), (0.0, None)),
}


def performance_chart(history: pd.DataFrame) -> bytes:
    """A PNG: AUC and precision at capacity over the runs' as_of dates, measured against estimated and against
    highest-balance-first."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(CHART), figsize=(11, 4))
    ordered = history.sort_values("as_of")
    pad = pd.Timedelta(days=14)
    for ax, (title, (lines, (low, high))) in zip(axes, CHART.items(), strict=True):
        for column, label, style in lines:
            values = pd.to_numeric(ordered[column], errors="coerce")
            if values.notna().any():
                ax.plot(ordered["as_of"], values, style, label=label)
        ax.set(title=title, xlabel="run as_of", xlim=(ordered["as_of"].min() - pad, ordered["as_of"].max() + pad))
        ax.set_ylim(bottom=low, top=high if high is not None else 1.15 * ax.get_ylim()[1])
        ax.legend(fontsize=8)
        ax.tick_params(axis="x", labelrotation=30)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


#: Columns that count cases (shown as whole numbers).
COUNT_COLUMNS = ("rows", "rows_unlabelled", "list_size", "positives", "payment_cases", "payment_cases_known")


def html_cell(column: str, value) -> str:
    """A table cell: 3 decimals, counts whole, dates as days, yes/no, an em dash for what is not known."""
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "—"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, float | np.floating | int | np.integer) and column in COUNT_COLUMNS:
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        return f"{value:.3f}"
    return html.escape(str(value))


#: Columns of the HTML table (every column is in the JSON).
TABLE_COLUMNS = ("as_of", "run_id", "model_version", "matured", "rows", "list_size", "positives", "auc",
                 "estimated_auc", "auc_balance_baseline", "training_auc", "precision_at_capacity",
                 "estimated_precision_at_capacity", "precision_at_capacity_balance_baseline", "captured_at_capacity",
                 "precision_at_top_k", "estimated_precision_at_top_k", "precision_at_top_k_balance_baseline",
                 "calibration_error", "p10_p90_coverage", "p50_mae_days")

INTRO = """<p>Each row is one recorded worklist run. A run is <b>matured</b> once the ledger holds the whole label
horizon after its date ({horizon} weeks): it is then measured on what really happened (did the arrears grow?), with
the metrics training uses. Until then, only <b>estimated</b> figures exist: what the run's calibrated probabilities
expect (an estimate is right only if the model is calibrated; compare the two where both exist).</p>
<p><b>Precision at capacity</b> is the share of the cases on the run's lists (ready cases within each patch's
capacity) whose arrears grew; <b>at top k</b> is the same for the portfolio-wide top k by risk, k being the number
listed. <b>Highest balance first</b> is the baseline a housing team uses, measured on the same tenancies. The model
earns its place while its measured lines stay above the baseline's and near training's AUC.</p>"""


def performance_html(history: pd.DataFrame, title: str, horizon_weeks: int) -> str:
    """A self-contained page: how to read it, the chart (an embedded PNG), the table and a glossary."""
    chart = (f'<img alt="AUC and precision over the runs" src="data:image/png;base64,'
             f'{base64.b64encode(performance_chart(history)).decode()}">' if len(history) else
             "<p>No worklist run has been recorded yet.</p>")
    head = "".join(f"<th>{html.escape(c)}</th>" for c in TABLE_COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html_cell(c, row[c])}</td>" for c in TABLE_COLUMNS) + "</tr>"
                   for _, row in history.sort_values("as_of").iterrows())
    glossary = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in MEANINGS.items())
    style = ("body{font-family:sans-serif;margin:2em;max-width:80em}table{border-collapse:collapse;font-size:85%}"
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}dt{font-weight:bold}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>"
            f"{INTRO.format(horizon=horizon_weeks)}{chart}<h2>Runs</h2><table><tr>{head}</tr>{body}</table>"
            f"<h2>What each column means</h2><dl>{glossary}</dl></body></html>")


def write_performance_report(history: pd.DataFrame, out_dir: Path, name: str = "performance") -> tuple[Path, Path]:
    """`out_dir/name.json` (one record per run, every column) and `out_dir/name.html` (readable); no tenancy ids
    in either. Returns (html, json)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out_dir / f"{name}.json", out_dir / f"{name}.html"
    dated = history.assign(as_of=pd.to_datetime(history["as_of"]).dt.strftime("%Y-%m-%d"))
    records = json.loads(dated.to_json(orient="records", date_format="iso"))
    json_path.write_text(json.dumps(records, indent=1))
    html_path.write_text(performance_html(history, "Served worklist runs: performance on matured outcomes",
                                          risk_label_spec().horizon_weeks))
    return html_path, json_path
