"""Scoring and explanations: reasons are exact TreeSHAP values that add up to the raw score."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from serving.explain import score_cases
from serving.worklist import rank, worklist_frame

NAMES = ["balance", "arrears_weeks", "days_since_last_payment"]


@pytest.fixture(scope="module")
def booster_and_frame() -> tuple[lgb.Booster, pd.DataFrame]:
    rng = np.random.default_rng(3)
    n = 2000
    frame = pd.DataFrame({
        "tenancy_id": [f"T{i:04d}" for i in range(n)],
        "patch": rng.choice(["North", "South"], n),
        "balance": rng.normal(200, 300, n),
        "arrears_weeks": rng.exponential(2, n),
        "days_since_last_payment": rng.exponential(10, n),
    })
    frame.loc[frame.sample(frac=0.1, random_state=1).index, "days_since_last_payment"] = np.nan
    logit = 0.004 * frame["balance"] + 0.1 * frame["days_since_last_payment"].fillna(60) - 2
    label = rng.random(n) < 1 / (1 + np.exp(-logit))
    booster = lgb.train({"objective": "binary", "verbose": -1, "seed": 1, "num_threads": 1},
                        lgb.Dataset(frame[NAMES], label=label), num_boost_round=60)
    return booster, frame


def test_contributions_add_up_to_the_raw_score(booster_and_frame) -> None:
    booster, frame = booster_and_frame
    cases = score_cases(frame.head(300), booster)
    raw = booster.predict(frame.head(300)[NAMES], raw_score=True)
    for case, expected in zip(cases, raw, strict=True):
        total = case.base_value + sum(r.contribution for r in case.reasons) + case.other_contribution
        assert total == pytest.approx(case.raw_score, abs=1e-9)
        assert case.raw_score == pytest.approx(expected, abs=1e-9)
        assert case.risk_score == pytest.approx(1 / (1 + np.exp(-expected)))


def test_contributions_match_the_shap_library(booster_and_frame) -> None:
    import shap

    booster, frame = booster_and_frame
    sample = frame.head(50)
    explainer = shap.TreeExplainer(booster, feature_perturbation="tree_path_dependent")
    expected = explainer.shap_values(sample[NAMES])
    for i, case in enumerate(score_cases(sample, booster, n_reasons=3)):
        for reason in case.reasons:
            assert reason.contribution == pytest.approx(expected[i, NAMES.index(reason.feature)], abs=1e-6)


def test_reasons_are_the_largest_contributions_in_words(booster_and_frame) -> None:
    booster, frame = booster_and_frame
    for case in score_cases(frame.head(100), booster, n_reasons=2):
        sizes = [abs(r.contribution) for r in case.reasons]
        assert sizes == sorted(sizes, reverse=True)
        for reason in case.reasons:
            assert reason.text.endswith("(raises risk)" if reason.contribution > 0 else "(lowers risk)")
    missing = frame[frame["days_since_last_payment"].isna()].head(20)
    texts = [r.text for c in score_cases(missing, booster, n_reasons=3) for r in c.reasons
             if r.feature == "days_since_last_payment"]
    assert texts and all(t.startswith("no payment on record") for t in texts)


def test_ranking_is_by_risk_with_stable_ties(booster_and_frame) -> None:
    booster, frame = booster_and_frame
    rows = rank(score_cases(frame, booster), top=50)
    assert [r.rank for r in rows] == list(range(1, 51))
    scores = [r.risk_score for r in rows]
    assert scores == sorted(scores, reverse=True)
    everyone = rank(score_cases(frame, booster), top=len(frame))
    assert rows[-1].risk_score >= everyone[50].risk_score


def test_scores_do_not_depend_on_row_order_or_ids(booster_and_frame) -> None:
    booster, frame = booster_and_frame
    shuffled = frame.sample(frac=1, random_state=5).assign(tenancy_id=lambda f: "X" + f["tenancy_id"])
    by_id = {c.tenancy_id: c.risk_score for c in score_cases(frame, booster)}
    for case in score_cases(shuffled, booster):
        assert case.risk_score == by_id[case.tenancy_id[1:]]


def test_csv_table_carries_reason_text(booster_and_frame) -> None:
    booster, frame = booster_and_frame
    table = worklist_frame(rank(score_cases(frame, booster), top=5))
    assert list(table.columns[:4]) == ["rank", "tenancy_id", "patch", "risk_score"]
    assert table["reason_1"].str.contains("risk").all()


def test_top_cases_explains_only_the_listed_rows_and_ranks_like_everyone_explained(booster_and_frame) -> None:
    from serving.worklist import top_cases

    booster, frame = booster_and_frame
    everyone = rank(score_cases(frame, booster), top=25)
    listed = top_cases(frame, booster, 25)
    assert [r.model_dump() for r in listed] == [r.model_dump() for r in everyone]
