"""Bias on what is served: does a recorded worklist run put each group of tenants in front of officers in proportion
to its need, and is the model as good for each group?

A worklist run scores and ranks every live tenancy; officers work the ready queue of each patch down to its capacity
(the **top-capacity** cases). For every monitoring-only attribute (age band, sex, ethnicity, disability) and three
register columns (vulnerable, benefit type, payment method) this report answers, group by group:

- **Who is served.** The group's share of the live portfolio, of the ready list and of the top-capacity cases, and,
  when outcomes are known, of the **need**: the tenancies whose arrears actually grew. The *representation ratio*
  is the top-capacity share divided by the need share: 1 means the group is served in proportion to its need, 0.5
  means it gets half its fair share of officers' attention. Without need it is divided by the portfolio share, which
  is descriptive only (groups differ in risk legitimately) and never flagged.
- **How well the model serves it** (on matured labels): recall at capacity (of the group's tenancies whose arrears
  grew, the share in the top-capacity cases), precision at capacity (of the group's top-capacity cases, the share
  whose arrears grew) and the calibration gap (mean predicted risk minus the observed rate), each beside the
  overall value. A recall or precision *gap* is overall minus group: positive means the group is served worse.

Need and recall are judged on the ready list by default (`judge_on="ready"`): the ranking only orders ready cases,
and the readiness policy keeps some tenants out of the queue on purpose (a vulnerable tenant goes to review, a
breathing space blocks contact). The policy's effect is visible as the gap between portfolio and ready shares.

**How to read the uncertainty.** Every value carries a 95% interval: Wilson score intervals for proportions,
Newcombe's hybrid score interval for the gaps (group against the rest of the portfolio) and the MOVER-R interval for
ratios (treating the two shares as independent, which is conservative: they are positively correlated). A group is
*flagged* only when the interval's near end clears a threshold (e.g. the recall gap is at least 0.10 with 95%
confidence), so a small group's noisy estimate cannot raise an alarm; groups with fewer than `min_tenancies`
tenancies are reported but not judged at all. The thresholds are keyword arguments of `served_bias`.

Why not fairlearn's `MetricFrame` here (fairlearn 0.15, checked): its bootstrap (`n_boot`, `ci_quantiles`) took 12 s
for one metric of one attribute on 3,000 tenancies, gave a group of three tenancies a degenerate [0, 0] interval (a
false alarm waiting to happen) and has no per-group gap to the overall value (`difference_ci` is the largest gap
across groups); as a plain disaggregator of the counts every measure needs it cost 0.2 s per attribute for what a
groupby does in a millisecond (it stacks every row of every metric's arguments). So the counts are summed with
pandas and the intervals are closed-form; the unit tests check the per-group recall and precision against
`MetricFrame`'s own `true_positive_rate` and `precision_score`, so the two cannot drift apart silently.

Pure functions over DataFrames; only `write_bias_report` touches the disk. Nothing here names a tenancy.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from features.feeds.contract import MONITORING_ONLY_COLUMNS

# matplotlib is imported when a chart is drawn (`_pyplot`), its display-less backend chosen before pyplot loads.

#: The attributes a served-bias report covers by default: the monitoring-only columns and three register columns.
ATTRIBUTES: tuple[str, ...] = (*MONITORING_ONLY_COLUMNS, "vulnerable", "benefit_type", "payment_method")
#: A missing attribute value is its own group.
UNKNOWN = "unknown"
#: 95% two-sided normal quantile.
Z95 = 1.959963984540054
#: What each tenancy contributes to: every measure is built from these sums, per group and overall.
COUNTS: tuple[str, ...] = ("live", "ready", "top", "need", "positives", "hits", "labelled_top", "labelled",
                           "labelled_risk", "labelled_positive")
#: Share columns of the table: (prefix, count column, what it is a share of).
SHARES: tuple[tuple[str, str, str], ...] = (
    ("portfolio", "live", "the live portfolio"), ("ready", "ready", "the ready list"),
    ("need", "need", "the tenancies whose arrears grew"), ("top", "top", "the top-capacity cases"),
)


@dataclass(frozen=True)
class Flag:
    """One finding: `measure` of `attribute` = `group` is `value`, and `bound` (the near end of its 95% interval)
    clears `threshold`."""

    attribute: str
    group: str
    measure: str
    value: float
    bound: float
    threshold: float
    message: str


@dataclass(frozen=True)
class BiasReport:
    """A served-bias report: `table` has one row per (attribute, group); `overall` the portfolio-wide values."""

    table: pd.DataFrame
    overall: dict[str, Any]
    flags: list[Flag]
    thresholds: dict[str, Any] = field(default_factory=dict)

    @property
    def flagged_groups(self) -> list[tuple[str, str]]:
        return sorted({(f.attribute, f.group) for f in self.flags})

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: NaN and infinities become None, numpy scalars plain numbers."""
        return _json_safe({
            "table": self.table.to_dict(orient="records"),
            "overall": self.overall,
            "flags": [asdict(f) for f in self.flags],
            "thresholds": self.thresholds,
        })


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ---------------------------------------------------------------------------------------------------- intervals


def wilson(k: Any, n: Any, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for k successes in n trials (vectorised; NaN where n is 0). Sound at 0/n and n/n."""
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        centre = (k + z * z / 2) / (n + z * z)
        half = z * np.sqrt(k * (n - k) / n + z * z / 4) / (n + z * z)
        ok = n > 0
        return np.where(ok, np.clip(centre - half, 0, 1), np.nan), np.where(ok, np.clip(centre + half, 0, 1), np.nan)


def difference_interval(p1: Any, l1: Any, u1: Any, p2: Any, l2: Any, u2: Any) -> tuple[np.ndarray, np.ndarray]:
    """Interval for p1 - p2 from independent intervals of each (Newcombe's hybrid score / MOVER-D)."""
    p1, l1, u1, p2, l2, u2 = (np.asarray(v, dtype=float) for v in (p1, l1, u1, p2, l2, u2))
    d = p1 - p2
    return d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def ratio_interval(p1: Any, l1: Any, u1: Any, p2: Any, l2: Any, u2: Any) -> tuple[np.ndarray, np.ndarray]:
    """Interval for p1 / p2 from independent intervals of each (MOVER-R, Donner & Zou 2012). Where MOVER-R is not
    defined (a tiny denominator), the conservative [l1/u2, u1/l2] is used instead."""
    p1, l1, u1, p2, l2, u2 = (np.asarray(v, dtype=float) for v in (p1, l1, u1, p2, l2, u2))
    prod = p1 * p2
    with np.errstate(divide="ignore", invalid="ignore"):
        low_den, high_den = u2 * (2 * p2 - u2), l2 * (2 * p2 - l2)
        low = (prod - np.sqrt(prod**2 - l1 * u2 * (2 * p1 - l1) * (2 * p2 - u2))) / low_den
        high = (prod + np.sqrt(prod**2 - u1 * l2 * (2 * p1 - u1) * (2 * p2 - l2))) / high_den
        low = np.where(np.isfinite(low) & (low_den > 0), low, l1 / u2)
        high = np.where(np.isfinite(high) & (high_den > 0), high, np.where(l2 > 0, u1 / l2, np.inf))
    undefined = ~(p2 > 0)
    return np.where(undefined, np.nan, np.maximum(low, 0)), np.where(undefined, np.nan, high)


# ------------------------------------------------------------------------------------------------ the measures


def group_labels(values: pd.Series) -> pd.Series:
    """An attribute's values as group names: missing → "unknown", flags → "yes"/"no", anything else its text."""
    def name(value: Any) -> str:
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            return UNKNOWN
        if isinstance(value, bool | np.bool_):
            return "yes" if value else "no"
        return str(value)

    return values.astype(object).map(name)


def served_frame(rows: pd.DataFrame, groups: pd.DataFrame, capacity: int, need: pd.DataFrame | None = None,
                 labels: pd.DataFrame | None = None, judge_on: Literal["ready", "portfolio"] = "ready") -> pd.DataFrame:
    """One row per live tenancy: the 0/1 (or risk) contributions every measure counts, and its group under each
    attribute of `groups`. `judge_on` is the population need and recall are measured on."""
    if judge_on not in ("ready", "portfolio"):
        raise ValueError(f"judge_on must be 'ready' or 'portfolio', not {judge_on!r}")
    attributes = [c for c in groups.columns if c != "tenancy_id"]
    frame = rows[["tenancy_id", "readiness_state", "queue_rank", "risk_score"]].merge(
        groups.drop_duplicates("tenancy_id", keep="last"), on="tenancy_id", how="left")
    grew = _outcome(frame, need, "grew")
    label = _outcome(frame, labels, "label")
    ready = frame["readiness_state"].eq("ready").to_numpy()
    top = ready & pd.to_numeric(frame["queue_rank"], errors="coerce").le(capacity).to_numpy()
    scope = ready if judge_on == "ready" else np.ones(len(frame), dtype=bool)
    labelled, positive = ~np.isnan(label), label == 1
    counts = {
        "live": np.ones(len(frame)), "ready": ready, "top": top, "need": scope & (grew == 1),
        "positives": scope & positive, "hits": top & positive, "labelled_top": top & labelled,
        "labelled": labelled, "labelled_risk": np.where(labelled, frame["risk_score"].to_numpy(float), 0.0),
        "labelled_positive": positive,
    }
    out = pd.DataFrame({name: np.asarray(v, dtype=float) for name, v in counts.items()}, index=frame.index)
    for attribute in attributes:
        out[attribute] = group_labels(frame[attribute])
    return out


def _outcome(frame: pd.DataFrame, outcomes: pd.DataFrame | None, column: str) -> np.ndarray:
    """Each row's 0/1 outcome from `outcomes` (tenancy_id, column), NaN where it has none."""
    if outcomes is None:
        return np.full(len(frame), np.nan)
    known = outcomes.drop_duplicates("tenancy_id", keep="last").set_index("tenancy_id")[column]
    return pd.to_numeric(frame["tenancy_id"].map(known), errors="coerce").to_numpy(float)


def group_totals(frame: pd.DataFrame, attribute: str) -> tuple[pd.DataFrame, pd.Series]:
    """Every count of `served_frame` summed per group of `attribute` (index: group name) and overall."""
    by_group = frame.groupby(attribute, sort=True)[list(COUNTS)].sum()
    by_group.index = by_group.index.astype(str)
    return by_group, frame[list(COUNTS)].sum()


def _rate(k: Any, n: Any) -> dict[str, np.ndarray]:
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    low, high = wilson(k, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"value": np.where(n > 0, k / n, np.nan), "low": low, "high": high}


def share_columns(totals: pd.DataFrame, overall: pd.Series, has_need: bool) -> dict[str, np.ndarray]:
    """Each group's share of the portfolio, ready list, need and top-capacity cases, and its representation ratio
    (top-capacity share ÷ need share, or ÷ portfolio share without need), each with a 95% interval."""
    columns: dict[str, np.ndarray] = {}
    for prefix, count, _ in SHARES:
        rate = _rate(totals[count], overall[count]) if has_need or prefix != "need" else _rate(np.nan, np.nan)
        columns |= {f"{prefix}_share": rate["value"], f"{prefix}_share_low": rate["low"],
                    f"{prefix}_share_high": rate["high"]}
    basis = "need" if has_need else "portfolio"
    parts = [columns[f"{prefix}_share{end}"] for prefix in ("top", basis) for end in ("", "_low", "_high")]
    with np.errstate(divide="ignore", invalid="ignore"):
        columns["representation_ratio"] = np.where(parts[3] > 0, parts[0] / parts[3], np.nan)
    columns["representation_ratio_low"], columns["representation_ratio_high"] = ratio_interval(*parts)
    return columns


def _gap_to_overall(totals: pd.DataFrame, overall: pd.Series, k: str, n: str) -> dict[str, np.ndarray]:
    """The group's rate k/n and overall − group with its interval. Overall = w·group + (1 − w)·rest, so
    overall − group = (1 − w)(rest − group), where w is the group's part of n; rest and group are independent."""
    group = _rate(totals[k], totals[n])
    rest = _rate(overall[k] - totals[k], overall[n] - totals[n])
    weight = 1 - totals[n].to_numpy(float) / overall[n] if overall[n] > 0 else np.full(len(totals), np.nan)
    low, high = difference_interval(rest["value"], rest["low"], rest["high"],
                                    group["value"], group["low"], group["high"])
    whole = _rate(overall[k], overall[n])
    return group | {"gap": whole["value"] - group["value"], "gap_low": weight * low, "gap_high": weight * high}


def outcome_columns(totals: pd.DataFrame, overall: pd.Series) -> dict[str, np.ndarray]:
    """Recall and precision at capacity with their gaps to overall, and the calibration gap, on matured labels."""
    recall = _gap_to_overall(totals, overall, "hits", "positives")
    precision = _gap_to_overall(totals, overall, "hits", "labelled_top")
    observed = _rate(totals["labelled_positive"], totals["labelled"])
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_risk = np.where(totals["labelled"] > 0, totals["labelled_risk"] / totals["labelled"], np.nan)
    columns = {"labelled": totals["labelled"].to_numpy(int), "positives": totals["positives"].to_numpy(int),
               "mean_risk": mean_risk, "observed_rate": observed["value"],
               "calibration_gap": mean_risk - observed["value"],
               "calibration_gap_low": mean_risk - observed["high"], "calibration_gap_high": mean_risk - observed["low"]}
    for name, measure in (("recall", recall), ("precision", precision)):
        columns |= {name: measure["value"], f"{name}_low": measure["low"], f"{name}_high": measure["high"],
                    f"{name}_gap": measure["gap"], f"{name}_gap_low": measure["gap_low"],
                    f"{name}_gap_high": measure["gap_high"]}
    return columns


def overall_values(frame: pd.DataFrame, capacity: int, has_need: bool, judge_on: str) -> dict[str, Any]:
    """The portfolio-wide counts and measures each group is compared with."""
    total = frame[list(COUNTS)].sum()
    values: dict[str, Any] = {
        "capacity": int(capacity), "judge_on": judge_on, "representation_basis": "need" if has_need else "portfolio",
        "live": int(total["live"]), "ready": int(total["ready"]), "top_capacity": int(total["top"]),
        "need": int(total["need"]) if has_need else None, "labelled": int(total["labelled"]),
        "positives": int(total["positives"]),
    }
    for name, k, n in (("recall", "hits", "positives"), ("precision", "hits", "labelled_top"),
                       ("observed_rate", "labelled_positive", "labelled")):
        rate = _rate(total[k], total[n])
        values |= {name: float(rate["value"]), f"{name}_low": float(rate["low"]), f"{name}_high": float(rate["high"])}
    mean_risk = total["labelled_risk"] / total["labelled"] if total["labelled"] > 0 else math.nan
    values |= {"mean_risk": float(mean_risk), "calibration_gap": float(mean_risk - values["observed_rate"]),
               "calibration_gap_low": float(mean_risk - values["observed_rate_high"]),
               "calibration_gap_high": float(mean_risk - values["observed_rate_low"])}
    return values


# ------------------------------------------------------------------------------------------------------ flags


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def representation_flags(row: pd.Series, thresholds: dict[str, Any]) -> list[Flag]:
    """Served out of proportion to need: the ratio's interval lies wholly below `under_represented` or above
    `over_represented` (only judged against need, never against the portfolio)."""
    ratio, low, high = row["representation_ratio"], row["representation_ratio_low"], row["representation_ratio_high"]
    share = (f"{_percent(row['top_share'])} of the top-capacity cases against {_percent(row['need_share'])} of the "
             f"tenancies whose arrears grew (ratio {ratio:.2f}")
    where = f"{row['attribute']} = {row['group']}"
    if high < thresholds["under_represented"]:
        return [Flag(row["attribute"], row["group"], "representation", float(ratio), float(high),
                     thresholds["under_represented"], f"{where} is under-served relative to need: {share}, at most "
                     f"{high:.2f} with 95% confidence; flagged below {thresholds['under_represented']:.2f}).")]
    if low > thresholds["over_represented"]:
        return [Flag(row["attribute"], row["group"], "representation", float(ratio), float(low),
                     thresholds["over_represented"], f"{where} is over-served relative to need: {share}, at least "
                     f"{low:.2f} with 95% confidence; flagged above {thresholds['over_represented']:.2f}).")]
    return []


def outcome_flags(row: pd.Series, overall: dict[str, Any], thresholds: dict[str, Any]) -> list[Flag]:
    """Served worse on matured labels: recall or precision at capacity below overall, or calibration off, by more
    than the threshold with 95% confidence."""
    where, found = f"{row['attribute']} = {row['group']}", []
    for measure, words in (("recall", "recall at capacity (its tenancies whose arrears grew that were served)"),
                           ("precision", "precision at capacity (its served cases whose arrears grew)")):
        gap, low, limit = row[f"{measure}_gap"], row[f"{measure}_gap_low"], thresholds[f"{measure}_gap"]
        if low > limit:
            found.append(Flag(row["attribute"], row["group"], f"{measure}_gap", float(gap), float(low), limit,
                              f"{where} has lower {words}: {row[measure]:.2f} against {overall[measure]:.2f} overall, "
                              f"{gap:.2f} lower (at least {low:.2f} with 95% confidence; flagged above {limit:.2f})."))
    gap, low, high, limit = (row["calibration_gap"], row["calibration_gap_low"], row["calibration_gap_high"],
                             thresholds["calibration_gap"])
    for bound, direction in ((low, "over"), (-high, "under")):
        if bound > limit:
            found.append(Flag(row["attribute"], row["group"], "calibration_gap", float(gap), float(bound), limit,
                              f"{where}'s risk is {direction}-estimated: mean predicted {row['mean_risk']:.2f} "
                              f"against {row['observed_rate']:.2f} observed, a gap of {abs(gap):.2f} (at least "
                              f"{bound:.2f} with 95% confidence; flagged above {limit:.2f})."))
    return found


def find_flags(table: pd.DataFrame, overall: dict[str, Any], thresholds: dict[str, Any]) -> list[Flag]:
    """Every finding on a judged group whose confidence bound clears its threshold (NaN bounds never do)."""
    flags = []
    for _, row in table[table["judged"]].iterrows():
        if overall["representation_basis"] == "need":
            flags += representation_flags(row, thresholds)
        flags += outcome_flags(row, overall, thresholds)
    return flags


# ----------------------------------------------------------------------------------------------------- report


def served_bias(rows: pd.DataFrame, groups: pd.DataFrame, capacity: int, need: pd.DataFrame | None = None,
                labels: pd.DataFrame | None = None, *, min_tenancies: int = 30, seed: int = 0,
                judge_on: Literal["ready", "portfolio"] = "ready", recall_gap: float = 0.10,
                precision_gap: float = 0.10, calibration_gap: float = 0.05, under_represented: float = 0.8,
                over_represented: float = 1.25) -> BiasReport:
    """The served-bias report of one worklist run (module docstring: what it answers and how to read it).

    `rows`: the run's worklist rows (tenancy_id, readiness_state, queue_rank, risk_score); `groups`: tenancy_id and
    one column per attribute; `need`: (tenancy_id, grew); `labels`: (tenancy_id, label), the run's matured outcomes.
    A group is judged when it has at least `min_tenancies` live tenancies; the other keywords are the flag
    thresholds. `seed` is accepted for callers that pass one: the intervals are closed-form, so nothing is random.
    """
    if rows.empty:
        raise ValueError("a served-bias report needs the rows of a worklist run; none were given")
    del seed  # closed-form intervals: nothing to seed
    frame = served_frame(rows, groups, capacity, need, labels, judge_on)
    has_need = need is not None
    overall = overall_values(frame, capacity, has_need, judge_on)
    parts = []
    for attribute in [c for c in groups.columns if c != "tenancy_id"]:
        totals, whole = group_totals(frame, attribute)
        part = pd.DataFrame({"attribute": attribute, "group": totals.index,
                             "tenancies": totals["live"].to_numpy(int)})
        part["judged"] = part["tenancies"] >= min_tenancies
        parts.append(part.assign(**share_columns(totals, whole, has_need), **outcome_columns(totals, whole)))
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["attribute", "group"])
    overall |= {"attributes": [c for c in groups.columns if c != "tenancy_id"], "groups": len(table),
                "groups_judged": int(table["judged"].sum()) if len(table) else 0}
    thresholds = {"confidence": 0.95, "min_tenancies": min_tenancies, "recall_gap": recall_gap,
                  "precision_gap": precision_gap, "calibration_gap": calibration_gap,
                  "under_represented": under_represented, "over_represented": over_represented}
    flags = find_flags(table, overall, thresholds) if len(table) else []
    return BiasReport(table=table, overall=overall, flags=flags, thresholds=thresholds)


# ----------------------------------------------------------------------------------------------------- writing


def write_bias_report(report: BiasReport, out_dir: Path, name: str = "bias") -> tuple[Path, Path]:
    """Write `name.json` (table records, overall, flags, thresholds) and `name.html` (a page a person can read:
    aggregates only, no tenancy named). Returns (json path, html path)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out_dir / f"{name}.json", out_dir / f"{name}.html"
    json_path.write_text(json.dumps(report.to_dict(), indent=2))
    html_path.write_text(bias_html(report))
    return json_path, html_path


def _pyplot():
    """matplotlib without a display (imported on first use: nothing happens at import time)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def share_chart(part: pd.DataFrame, basis: str) -> str:
    """Top-capacity share against the basis share (need, or portfolio) per group, with 95% intervals: base64 PNG."""
    plt = _pyplot()
    x, width = np.arange(len(part)), 0.38
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(part) + 2), 3.2))
    bars = ((-width / 2, basis, f"share of {basis}"), (width / 2, "top", "share of top capacity"))
    for offset, prefix, label in bars:
        value = part[f"{prefix}_share"].to_numpy(float)
        errors = np.vstack([value - part[f"{prefix}_share_low"], part[f"{prefix}_share_high"] - value])
        # A share at 0 or 1 can sit a rounding error outside its own interval: an error bar is never negative.
        ax.bar(x + offset, value, width, yerr=np.clip(np.nan_to_num(errors), 0.0, None), capsize=3, label=label)
    ax.set_xticks(x, [str(g) for g in part["group"]], rotation=20, ha="right", fontsize=8)
    ax.set(ylabel="share (95% interval)", title=str(part["attribute"].iloc[0]))
    ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _cell(value: float, low: float, high: float, percent: bool = True) -> str:
    if not np.isfinite(value):
        return "–"
    show = _percent if percent else (lambda v: f"{v:.2f}" if np.isfinite(v) else "∞")
    return html.escape(f"{show(value)} ({show(low)} – {show(high)})")


def attribute_table(part: pd.DataFrame, has_need: bool, has_labels: bool) -> str:
    """One attribute's groups as an HTML table: tenancies, shares, representation and (with labels) outcomes."""
    heads = ["group", "tenancies", "judged", "portfolio", "ready list", *(["need"] if has_need else []),
             "top capacity", "representation"]
    heads += ["recall at capacity", "precision at capacity", "calibration gap"] if has_labels else []
    lines = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in heads) + "</tr>"]
    for _, row in part.iterrows():
        cells = [html.escape(str(row["group"])), f"{int(row['tenancies']):,}", "yes" if row["judged"] else "no"]
        for prefix in ("portfolio", "ready", *(["need"] if has_need else []), "top"):
            cells.append(_cell(row[f"{prefix}_share"], row[f"{prefix}_share_low"], row[f"{prefix}_share_high"]))
        cells.append(_cell(row["representation_ratio"], row["representation_ratio_low"],
                           row["representation_ratio_high"], percent=False))
        for measure in ("recall", "precision", "calibration_gap") if has_labels else ():
            cells.append(_cell(row[measure], row[f"{measure}_low"], row[f"{measure}_high"], percent=False))
        lines.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return "\n".join([*lines, "</table>"])


INTRO = (
    "<p>Each recorded worklist run ranks every live tenancy; officers work each patch's ready queue down to its "
    "capacity. This page asks, for each group of tenants, whether it is served in proportion to its need and "
    "whether the model is as accurate for it as for everyone.</p>"
    "<p><b>How to read it.</b> A <i>share</i> is the group's part of the portfolio, of the ready list, of the "
    "tenancies whose arrears grew (need), and of the top-capacity cases. The <i>representation ratio</i> is the "
    "top-capacity share divided by the need share (or the portfolio share when need is unknown): 1 is service in "
    "proportion to need. Recall at capacity is the share of a group's tenancies whose arrears grew that were served; "
    "precision at capacity the share of its served cases whose arrears grew; the calibration gap is mean predicted "
    "risk minus the observed rate. Every value has a 95% interval in brackets. A group is flagged only when the "
    "interval's near end clears the threshold, and groups with too few tenancies are shown but not judged, so small "
    "groups do not raise false alarms.</p>"
)


def bias_html(report: BiasReport) -> str:
    """The self-contained page: intro, flags first, the overall values, then a chart and table per attribute."""
    t, o = report.thresholds, report.overall
    has_need, has_labels = o.get("representation_basis") == "need", o.get("labelled", 0) > 0
    flags = "".join(f"<li>{html.escape(f.message)}</li>" for f in report.flags)
    why_none = (f"no judged group's 95% interval clears a threshold (recall or precision gap above "
                f"{t['recall_gap']:.2f}/{t['precision_gap']:.2f}, calibration gap above {t['calibration_gap']:.2f}, "
                f"representation below {t['under_represented']:.2f} or above {t['over_represented']:.2f} of need"
                f"{'' if has_need else ': not judged, need unknown'}{'' if has_labels else '; no matured labels'}).")
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>Served bias</title><style>",
             "body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse;"
             "font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}"
             "td:first-child,th:first-child{text-align:left}.flags li{color:#a00}</style></head><body>",
             "<h1>Bias on what is served</h1>", INTRO, "<h2>Findings</h2>",
             f"<ul class='flags'>{flags}</ul>" if flags else f"<p>No group flagged: {html.escape(why_none)}</p>",
             "<h2>Overall</h2>", "<p>" + html.escape(
                 f"{o['live']:,} live tenancies, {o['ready']:,} ready, {o['top_capacity']:,} within capacity "
                 f"({o['capacity']} per patch); need and recall judged on the {o['judge_on']} list; groups judged "
                 f"from {t['min_tenancies']} tenancies ({o['groups_judged']} of {o['groups']}).") + "</p>"]
    if has_labels:
        parts.append("<p>" + html.escape(
            f"On {o['labelled']:,} matured labels: recall at capacity {o['recall']:.2f} ({o['recall_low']:.2f} – "
            f"{o['recall_high']:.2f}), precision at capacity {o['precision']:.2f} ({o['precision_low']:.2f} – "
            f"{o['precision_high']:.2f}), calibration gap {o['calibration_gap']:+.2f}.") + "</p>")
    for attribute, part in report.table.groupby("attribute", sort=False):
        chart = share_chart(part, "need" if has_need else "portfolio")
        parts += [f"<h2>{html.escape(str(attribute))}</h2>",
                  f"<img alt='shares of {html.escape(str(attribute))}' src='data:image/png;base64,{chart}'>",
                  attribute_table(part, has_need, has_labels)]
    return "\n".join([*parts, "</body></html>"])
