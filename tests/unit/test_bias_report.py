"""The served-bias report on small synthetic worklist runs: a group ranked below its need is flagged by name, groups
drawn alike raise no alarm, a tiny group is reported but not judged, shares add up, and the written report names
groups but never a tenancy."""

from __future__ import annotations

import json
import math
from functools import partial

import numpy as np
import pandas as pd
import pytest

from monitoring.bias import difference_interval, ratio_interval, served_bias, wilson, write_bias_report

NOT_READY = ("hold", "review", "recent_payment", "payment_plan", "disputed")
PATCHES = ("north", "south", "east")
CAPACITY = 120


def worklist_run(seed: int, n: int = 3000, *, shift: str | None = None, tiny: int = 0) -> dict[str, pd.DataFrame]:
    """A recorded run of `n` live tenancies whose arrears grow with a hidden probability the risk score states
    exactly, except for the ethnicity group `shift` (scored at 40% of its true risk) and, with `tiny`, a group "Z"
    of that many tenancies who all see their arrears grow but are scored 0."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"TEN-{seed:03d}-{i:05d}" for i in range(n)])
    ethnicity = rng.choice(["A", "B", "C", "D"], n, p=[0.55, 0.30, 0.135, 0.015])
    sex = rng.choice(np.array(["F", "M", None], dtype=object), n, p=[0.55, 0.40, 0.05])
    truth = 1 / (1 + np.exp(-rng.normal(-1.6, 1.2, n)))
    grew = rng.random(n) < truth
    risk = np.where(ethnicity == shift, 0.4 * truth, truth)
    if tiny:
        ethnicity[:tiny], risk[:tiny], grew[:tiny] = "Z", 0.0, True
    ready = rng.random(n) < 0.7
    rows = pd.DataFrame({
        "tenancy_id": ids, "patch": rng.choice(PATCHES, n), "raw_score": np.log(risk + 1e-6), "risk_score": risk,
        "readiness_state": np.where(ready, "ready", rng.choice(NOT_READY, n)), "balance": rng.gamma(2, 200, n),
    })
    rows["risk_rank"] = rows["risk_score"].rank(ascending=False, method="first").astype(int)
    # As serving.runs.record ranks them: within each (readiness state, patch) queue, so non-ready rows have ranks too.
    rows["queue_rank"] = rows.groupby(["readiness_state", "patch"])["risk_score"].rank(ascending=False,
                                                                                       method="first").astype(int)
    return {
        "rows": rows, "groups": pd.DataFrame({"tenancy_id": ids, "ethnicity": ethnicity, "sex": sex}),
        "need": pd.DataFrame({"tenancy_id": ids, "grew": grew.astype(int)}),
        "labels": pd.DataFrame({"tenancy_id": ids, "label": grew.astype(int)}),
    }


def report_of(run: dict[str, pd.DataFrame], **kwargs):
    return served_bias(run["rows"], run["groups"], CAPACITY, run["need"], run["labels"], **kwargs)


@pytest.fixture(scope="module")
def shifted() -> dict[str, pd.DataFrame]:
    return worklist_run(seed=7, shift="B")


def test_a_group_ranked_below_its_need_is_flagged_by_name(shifted: dict[str, pd.DataFrame]) -> None:
    before = {name: frame.copy() for name, frame in shifted.items()}
    report = report_of(shifted)
    by_measure = {(f.group, f.measure): f for f in report.flags if f.attribute == "ethnicity"}
    under = by_measure[("B", "representation")]
    assert under.value < 1 and under.bound < report.thresholds["under_represented"]
    assert "ethnicity = B" in under.message and "under-served" in under.message
    recall = by_measure[("B", "recall_gap")]
    assert recall.bound > report.thresholds["recall_gap"]
    b = report.table.set_index(["attribute", "group"]).loc[("ethnicity", "B")]
    assert b["recall"] < report.overall["recall"] and b["top_share"] < b["need_share"]
    # Sex was drawn independently of everything: nothing to find there.
    assert not [f for f in report.flags if f.attribute == "sex"]
    for name, frame in shifted.items():
        pd.testing.assert_frame_equal(frame, before[name])


def test_groups_drawn_alike_raise_no_false_alarm() -> None:
    false_alarms = {seed: [f.message for f in report_of(worklist_run(seed)).flags] for seed in range(100, 110)}
    assert sum(bool(flags) for flags in false_alarms.values()) <= 1, false_alarms


def test_a_tiny_group_is_reported_but_not_judged() -> None:
    run = worklist_run(seed=3, tiny=12)
    report = report_of(run)
    z = report.table.set_index(["attribute", "group"]).loc[("ethnicity", "Z")]
    assert z["tenancies"] == 12 and not z["judged"]
    assert z["top_share"] == 0 and z["calibration_gap"] < -0.5  # an extreme difference …
    assert not [f for f in report.flags if f.group == "Z"]  # … raises no alarm while the group is too small
    judged_anyway = report_of(run, min_tenancies=5)  # the size rule, not a missing effect, is what keeps it quiet
    assert "calibration_gap" in {f.measure for f in judged_anyway.flags if f.group == "Z"}


def test_shares_in_each_attribute_add_up_to_one(shifted: dict[str, pd.DataFrame]) -> None:
    report = report_of(shifted)
    sums = report.table.groupby("attribute")[["portfolio_share", "ready_share", "need_share", "top_share"]].sum()
    assert np.allclose(sums.to_numpy(), 1.0)
    assert set(report.table.loc[report.table["attribute"] == "sex", "group"]) == {"F", "M", "unknown"}
    run = shifted["rows"].merge(shifted["need"]).merge(shifted["groups"])
    ready = run[run["readiness_state"] == "ready"]
    expected = pd.DataFrame({"need_share": ready.loc[ready["grew"] == 1, "ethnicity"].value_counts(normalize=True),
                             "top_share": ready.loc[ready["queue_rank"] <= CAPACITY, "ethnicity"].value_counts(
                                 normalize=True)}).fillna(0.0).sort_index()
    ours = report.table.query("attribute == 'ethnicity'").set_index("group")[["need_share", "top_share"]]
    pd.testing.assert_frame_equal(ours, expected, check_names=False)
    shares = report.table[[c for c in report.table if c.endswith("_share")]]
    assert ((report.table[[f"{c}_low" for c in shares]].to_numpy() <= shares.to_numpy())
            & (shares.to_numpy() <= report.table[[f"{c}_high" for c in shares]].to_numpy())).all()


def test_group_recall_and_precision_agree_with_fairlearn(shifted: dict[str, pd.DataFrame]) -> None:
    from fairlearn.metrics import MetricFrame, true_positive_rate
    from sklearn.metrics import precision_score

    report = report_of(shifted)
    ready = shifted["rows"].merge(shifted["labels"]).merge(shifted["groups"]).query("readiness_state == 'ready'")
    frame = MetricFrame(
        metrics={"recall": true_positive_rate, "precision": partial(precision_score, zero_division=np.nan)},
        y_true=ready["label"], y_pred=(ready["queue_rank"] <= CAPACITY).astype(int),
        sensitive_features=ready["ethnicity"])
    ours = report.table.query("attribute == 'ethnicity'").set_index("group")[["recall", "precision"]]
    pd.testing.assert_frame_equal(ours, frame.by_group.rename_axis("group"), check_dtype=False)
    assert np.isclose(report.overall["recall"], frame.overall["recall"])


def test_without_need_or_labels_representation_is_descriptive_only(shifted: dict[str, pd.DataFrame]) -> None:
    report = served_bias(shifted["rows"], shifted["groups"], CAPACITY)
    assert report.flags == [] and report.overall["representation_basis"] == "portfolio"
    b = report.table.set_index(["attribute", "group"]).loc[("ethnicity", "B")]
    assert math.isnan(b["need_share"]) and b["representation_ratio_high"] < 0.8


def test_the_written_report_names_the_flagged_group_and_no_tenancy(shifted: dict[str, pd.DataFrame], tmp_path) -> None:
    report = report_of(shifted)
    json_path, html_path = write_bias_report(report, tmp_path / "reports", name="served_bias")
    loaded = json.loads(json_path.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
    assert set(loaded) == {"table", "overall", "flags", "thresholds"}
    assert {("ethnicity", "B")} <= {(f["attribute"], f["group"]) for f in loaded["flags"]}
    assert loaded["thresholds"]["recall_gap"] == 0.10 and len(loaded["table"]) == len(report.table)
    page = html_path.read_text()
    assert "ethnicity = B is under-served" in page and page.count("data:image/png;base64,") == 2
    ids = shifted["rows"]["tenancy_id"]
    assert not [t for t in ids if t in page] and not [t for t in ids if t in json_path.read_text()]


def test_intervals() -> None:
    low, high = wilson([5, 0, 20], [10, 20, 20])
    assert np.allclose([low[0], high[0]], [0.2366, 0.7634], atol=1e-4)
    assert low[1] == 0 and 0.15 < high[1] < 0.17 and high[2] == 1
    assert np.isnan(wilson(0, 0)[0])
    d_low, d_high = difference_interval(0.5, 0.4, 0.6, 0.2, 0.1, 0.3)
    assert d_low < 0.3 < d_high and np.isclose(0.3 - d_low, math.hypot(0.1, 0.1))
    r_low, r_high = ratio_interval(0.3, 0.2, 0.4, 0.5, 0.5, 0.5)  # a fixed denominator: the numerator's interval
    assert np.allclose([r_low, r_high], [0.4, 0.8])
    r_low, r_high = ratio_interval(0.0, 0.0, 0.3, 0.01, 0.002, 0.05)  # 0 over a tiny share: wide, never negative
    assert r_low == 0 and r_high > 6


def test_a_share_a_rounding_error_outside_its_interval_still_draws() -> None:
    from monitoring.bias import share_chart

    part = pd.DataFrame({"attribute": ["benefit_type"] * 2, "group": ["a", "b"],
                         "need_share": [0.0, 1.0], "need_share_low": [1e-17, 0.9],
                         "need_share_high": [0.1, 1.0 - 1e-17],
                         "top_share": [0.2, 0.8], "top_share_low": [0.1, 0.7], "top_share_high": [0.3, 0.9]})
    assert len(share_chart(part, "need")) > 100  # a base64 PNG, where matplotlib refused a negative error bar
