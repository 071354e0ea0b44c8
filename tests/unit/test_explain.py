"""Scoring and explanations: reasons are exact TreeSHAP values that add up to the raw score."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from features.catalogue import CONCEPT_OF
from serving.runs.explain import score_cases
from serving.runs.worklist import top_cases
from training.evaluate import reason_coverage

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
            for feature in reason.features:
                assert feature.contribution == pytest.approx(expected[i, NAMES.index(feature.feature)], abs=1e-6)
            members = [n for n in NAMES if CONCEPT_OF[n] == reason.concept]
            assert reason.contribution == pytest.approx(sum(expected[i, NAMES.index(n)] for n in members), abs=1e-6)


def test_reasons_are_concepts_largest_first_in_words(booster_and_frame) -> None:
    booster, frame = booster_and_frame
    for case in score_cases(frame.head(100), booster, n_reasons=2):
        sizes = [abs(r.contribution) for r in case.reasons]
        assert sizes == sorted(sizes, reverse=True)
        assert {r.concept for r in case.reasons} <= {"arrears", "payments"}
        arrears = [r for r in case.reasons if r.concept == "arrears"]
        assert all({f.feature for f in r.features} == {"balance", "arrears_weeks"} for r in arrears)
        for reason in case.reasons:
            assert reason.text.startswith(reason.label + ": ")
            assert reason.text.endswith("(raises risk)" if reason.contribution > 0 else "(lowers risk)")
    missing = frame[frame["days_since_last_payment"].isna()].head(20)
    texts = [f.text for c in score_cases(missing, booster, n_reasons=3) for r in c.reasons for f in r.features
             if f.feature == "days_since_last_payment"]
    assert texts and all(t.startswith("no payment on record") for t in texts)


def test_scores_do_not_depend_on_row_order_or_ids(booster_and_frame) -> None:
    booster, frame = booster_and_frame
    shuffled = frame.sample(frac=1, random_state=5).assign(tenancy_id=lambda f: "X" + f["tenancy_id"])
    by_id = {c.tenancy_id: c.risk_score for c in score_cases(frame, booster)}
    for case in score_cases(shuffled, booster):
        assert case.risk_score == by_id[case.tenancy_id[1:]]


def test_top_cases_explains_only_the_listed_rows_and_ranks_like_everyone_explained(booster_and_frame) -> None:
    booster, frame = booster_and_frame
    everyone = sorted(score_cases(frame, booster), key=lambda c: (-c.raw_score, c.tenancy_id))[:25]
    listed = top_cases(frame, booster, 25)
    assert [r.model_dump() for r in listed] == [r.model_dump() for r in everyone]
    scores = [c.raw_score for c in listed]
    assert scores == sorted(scores, reverse=True)


def test_reason_coverage_counts_every_feature_of_a_shown_concept() -> None:
    names = ["balance", "arrears_weeks", "days_since_last_payment", "weekly_rent"]
    shap_values = np.array([[1.0, 1.0, 1.5, 0.5]])  # concepts: arrears 2.0, payments 1.5, tenancy 0.5
    coverage = reason_coverage(shap_values, names, n_reasons=1)
    assert coverage["features"] == pytest.approx(1.5 / 4.0)  # the largest single feature
    assert coverage["concepts"] == pytest.approx(2.0 / 4.0)  # the largest concept, both its features
