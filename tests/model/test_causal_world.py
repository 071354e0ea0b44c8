"""The causal world (`simulator.causal`) and the replay harness (`arrears.impact`): the truth the experiments and the
uplift model are judged against must itself behave as stated."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from arrears.impact import (
    CONTACT_LIMIT_DAYS,
    experiment_once,
    holdout_mask,
    observe_weeks,
    policy_once,
    work_the_list,
)
from simulator.causal import CausalWorld, WorldSpec, growth_labels


@pytest.fixture(scope="module")
def world() -> CausalWorld:
    w = CausalWorld(WorldSpec(tenancies=3000, weeks=20), seed=11)
    observe_weeks(w, 4)
    return w


def _four_weeks(world: CausalWorld, contacted) -> np.ndarray:
    twin = world.fork()
    twin.step(contacted)
    for _ in range(3):
        twin.step([])
    return twin.collected(weeks=4)


def test_same_contacts_same_future_and_no_spill_over(world):
    seen = world.observe()
    ready = seen.loc[seen["readiness_state"] == "ready", "tenancy_id"].tolist()
    first, again = _four_weeks(world, ready[:200]), _four_weeks(world, ready[:200])
    np.testing.assert_array_equal(first, again)
    nobody = _four_weeks(world, [])
    moved = np.flatnonzero(first != nobody)
    assert len(moved) > 20, "contacting 200 ready tenancies changed nobody's payments"
    assert set(world.tenancy_id[moved]) <= set(ready[:200]), "a contact changed an uncontacted tenancy's payments"


def test_effects_follow_the_hidden_kinds_and_expected_gain_ranks_them(world):
    seen = world.observe()
    ready = seen["readiness_state"].to_numpy() == "ready"
    ids = seen["tenancy_id"][ready].tolist()
    gain = _four_weeks(world, ids)[ready] - _four_weeks(world, [])[ready]
    kind = world.truth()["kind"].to_numpy()[ready]
    by_kind = pd.Series(gain).groupby(kind).mean()
    assert by_kind["persuadable"] > 100, by_kind
    assert by_kind["sleeping_dog"] < -20, by_kind
    assert abs(by_kind["sure_thing"]) < 5 and abs(by_kind["lost_cause"]) < by_kind["persuadable"] / 5, by_kind
    expected = world.expected_gain().to_numpy()[ready]
    assert np.corrcoef(expected, gain)[0, 1] > 0.5
    assert np.corrcoef(seen["arrears_weeks"].to_numpy()[ready], gain)[0, 1] < np.corrcoef(expected, gain)[0, 1]


def test_no_contact_is_made_in_breathing_space(world):
    seen = world.observe()
    blocked = seen.loc[seen["readiness_state"] == "blocked", "tenancy_id"].tolist()
    assert blocked
    twin = world.fork()
    twin.step(blocked)
    assert not twin.contacted[twin.t - 1][twin.rows(blocked)].any()


def test_growth_label_is_the_risk_label(world):
    twin = world.fork()
    week = twin.week
    for _ in range(8):
        twin.step([])
    label = growth_labels(twin, week).to_numpy()
    now = twin.balance_at(week)
    peak = np.max([twin.balance_at(week + k) for k in range(1, 9)], axis=0)
    by_hand = (peak - now >= twin.rent) | ((now < 4 * twin.rent) & (peak >= 4 * twin.rent))
    np.testing.assert_array_equal(label, by_hand.astype(int))
    with pytest.raises(ValueError, match="needs the world stepped"):
        growth_labels(world, world.week)


def test_the_list_takes_ready_cases_by_score_within_capacity():
    seen = pd.DataFrame({
        "tenancy_id": [f"T{i}" for i in range(8)],
        "patch": ["A", "A", "A", "A", "B", "B", "B", "B"],
        "readiness_state": ["ready", "ready", "ready", "hold", "ready", "disputed", "ready", "ready"],
        "days_since_contact": [365, 365, 7, 365, 365, 365, 365, CONTACT_LIMIT_DAYS - 1],
    })
    score = np.array([0.9, 0.5, 0.99, 0.99, 0.1, 0.99, 0.2, 0.95])
    assert work_the_list(seen, score, 1) == ["T0", "T6"]
    assert sorted(work_the_list(seen, score, 5)) == ["T0", "T1", "T4", "T6"]
    held = np.array([True, False, False, False, False, False, False, False])
    assert work_the_list(seen, score, 1, held) == ["T1", "T6"]
    seen.loc[7, "days_since_contact"] = CONTACT_LIMIT_DAYS  # four weeks on: contactable again
    assert work_the_list(seen, score, 1) == ["T0", "T7"]


def test_holdout_is_the_services_stable_assignment():
    ids = [f"T{i}" for i in range(4000)]
    first = holdout_mask(ids, "exp-a", 0.2)
    np.testing.assert_array_equal(first, holdout_mask(list(reversed(ids)), "exp-a", 0.2)[::-1])
    assert 0.17 < first.mean() < 0.23
    assert (first != holdout_mask(ids, "exp-b", 0.2)).any(), "a second experiment must draw afresh"


def test_an_experiment_interval_covers_the_known_effect_with_balanced_arms():
    found = experiment_once(3, tenancies=10_000)
    assert found["true_effect"] < 0, "contacting ready cases should lower their arrears on average"
    assert found["covers"], found
    assert found["max_abs_smd"] < 0.1, found
    assert found["se"] <= found["unadjusted_se"]


def test_every_order_works_the_list_at_the_same_capacity():
    """The policy simulator's orders differ only in whom they pick: each asks for a patch's capacity every week (a
    contact asked of a tenant whose Breathing Space began that week is not made, so a few fall short), and the
    ceiling (the true effect) collects more than contacting at random."""
    rows = pd.DataFrame(policy_once(5, uplift=None, tenancies=2000, weeks=3, capacity=10,
                                    policies=("risk", "balance", "random", "ceiling")))
    assert rows["contacts"].between(0.98 * 3 * 10 * 8, 3 * 10 * 8).all(), rows
    by = rows.set_index("policy")["incremental_pounds"]
    assert by["ceiling"] > by["random"] > 0
