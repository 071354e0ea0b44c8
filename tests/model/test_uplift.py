"""The contact-uplift model on the causal simulator (fixed seeds): learnt only from a randomised pilot, it finds
more of what contacts bring in than the risk-like order and random at equal capacity, against the true effects the
simulator keeps; its Qini curve is the textbook one; it is registered and gated like the risk model.

The pilot: in each world, at week 0, every ready case is contacted or not by a seeded coin (50/50); the outcome is
what it paid over the next 4 weeks (the contact's week and three quiet ones). Training worlds and held-out worlds
have separate seeds; the truth (`CausalWorld.expected_gain` at week 0) is used only to judge.
"""

from __future__ import annotations

import warnings

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from simulator.causal import CausalWorld, WorldSpec
from training.uplift import (
    LIGHTGBM_DEFAULTS,
    UPLIFT_FEATURES,
    ContactUplift,
    auuc,
    holdout_metrics,
    incremental_at_capacity,
    qini_coefficient,
    qini_curve,
    share_of_ceiling,
)

TRAINING_SEEDS = tuple(range(101, 109))
HELD_OUT_SEEDS = (201, 202, 203, 204, 205, 206)
CAPACITY = 0.15  # of the ready cases
FEATURES = list(UPLIFT_FEATURES)


def randomised_pilot(seed: int, treated_share: float = 0.5) -> pd.DataFrame:
    """A world's ready cases at week 0, each treated by a seeded coin, with the pounds collected over 4 weeks and
    (for judging only) the true expected gain of a contact at week 0."""
    world = CausalWorld(WorldSpec(tenancies=4000), seed=seed)
    seen = world.observe()
    ready = seen[seen.readiness_state == "ready"].reset_index(drop=True)
    true_gain = world.expected_gain().loc[ready.tenancy_id].to_numpy()
    treated = np.random.default_rng(10_000 + seed).random(len(ready)) < treated_share
    untouched = world.fork()
    world.step(ready.tenancy_id[treated])
    untouched.step([])
    for _ in range(3):
        world.step([])
        untouched.step([])
    collected = world.collected(ready.tenancy_id, 4)
    # What the pilot's contacts caused, tenancy by tenancy (the fork shares the random numbers): zero off the arm.
    caused = collected - untouched.collected(ready.tenancy_id, 4)
    assert np.allclose(caused[~treated], 0.0)
    return ready.assign(treated=treated.astype(int), collected=collected, true_gain=true_gain, caused=caused)


@pytest.fixture(scope="module")
def pilot() -> dict:
    train = pd.concat([randomised_pilot(seed) for seed in TRAINING_SEEDS], ignore_index=True)
    held_out = {seed: randomised_pilot(seed) for seed in HELD_OUT_SEEDS}
    model = ContactUplift().fit(train[FEATURES], train["collected"], train["treated"])
    shuffled = ContactUplift().fit(train[FEATURES], train["collected"],
                                   np.random.default_rng(5).permutation(train["treated"].to_numpy()))
    # What these features can tell at best: the same learner fitted to the TRUE gains (no outcome noise at all).
    units = np.maximum(train["balance"], train["weekly_rent"])
    told = lgb.train({**LIGHTGBM_DEFAULTS, "num_leaves": 15}, lgb.Dataset(train[FEATURES], train["true_gain"] / units),
                     num_boost_round=300)
    return {"train": train, "held_out": held_out, "model": model, "shuffled": shuffled,
            "features_ceiling": lambda frame: told.predict(frame[FEATURES]) * np.maximum(frame["balance"],
                                                                                     frame["weekly_rent"])}


def orders(pilot: dict, frame: pd.DataFrame, seed: int) -> dict[str, np.ndarray]:
    return {"model": pilot["model"].predict(frame), "risk order": frame["arrears_weeks"].to_numpy(),
            "balance first": frame["balance"].to_numpy(),
            "random": np.random.default_rng(seed).random(len(frame)),
            "features' ceiling": pilot["features_ceiling"](frame), "ceiling": frame["true_gain"].to_numpy()}


def shares(pilot: dict) -> pd.DataFrame:
    rows = {seed: {name: share_of_ceiling(score, frame["true_gain"], CAPACITY)
                   for name, score in orders(pilot, frame, seed).items()}
            for seed, frame in pilot["held_out"].items()}
    table = pd.DataFrame(rows).T
    print("\nshare of the uplift ceiling at 15% of the ready cases, per held-out world:\n" + table.round(3).to_string()
          + "\nmean:\n" + table.mean().round(3).to_string())
    return table


# -- against the truth -------------------------------------------------------------------------------------------------
def test_the_pilot_is_randomised_and_contacts_cause_what_the_truth_says(pilot) -> None:
    """The data the model learns from: arms balanced on the pre-period; what the contacts caused (the fork) averages
    to the simulator's expected gain."""
    train = pilot["train"]
    arms = train.groupby("treated")[["arrears_weeks", "balance", "paid_to_charged_13w"]].mean()
    spread = train[["arrears_weeks", "balance", "paid_to_charged_13w"]].std()
    assert ((arms.loc[1] - arms.loc[0]).abs() / spread).max() < 0.1
    treated = train[train["treated"] == 1]
    # Realised effects fall ~11% short of the expected gain on these seeds (£107 against £120 a treated case): a
    # catch-up a contact prompts leaves less owed, so later unprompted catch-ups (a share of what is owed) are
    # smaller, which `expected_gain` leaves out. The ranking is what matters here, and it holds.
    assert treated["caused"].mean() == pytest.approx(treated["true_gain"].mean(), rel=0.2)
    assert np.corrcoef(treated["caused"], treated["true_gain"])[0, 1] > 0.3


def test_the_model_finds_most_of_what_the_features_can_tell(pilot) -> None:
    """On held-out worlds, at 15% of the ready cases: the model's true incremental pounds, as a share of the uplift
    ceiling (the top cases by the true gain), come close to those of the same learner fitted to the true gains
    (what these features can tell at best), well above random."""
    table = shares(pilot).mean()
    assert table["model"] >= 0.8 * table["features' ceiling"]
    assert table["model"] >= 0.35
    assert table["model"] >= table["random"] + 0.1


@pytest.mark.xfail(strict=True, reason=(
    "Issue 29's done-when (70% of the uplift ceiling) is out of reach on this simulator: the model reaches ~0.41 of "
    "the ceiling and the same learner fitted to the TRUE gains ~0.41-0.44, because whether a tenant is persuadable, "
    "a sure thing or a lost cause is drawn at random (given an archetype and an engagement the ledger shows only in "
    "part) and nothing seen before a first contact tells them apart for sure (docs/experiments.md, 'Uplift'). "
    "Strict: if the simulator or the model changes so that it passes, this marker must go."))
def test_the_model_reaches_seventy_percent_of_the_uplift_ceiling(pilot) -> None:
    assert shares(pilot).mean()["model"] >= 0.70


def test_the_model_beats_the_risk_order_and_random_at_equal_capacity_in_every_held_out_world(pilot) -> None:
    """True incremental pounds at 15% of the ready cases: more than the risk-like order (highest arrears first) and
    random in each held-out world, by a clear margin over them all, and more than highest-balance-first overall."""
    total = dict.fromkeys(("model", "risk order", "balance first", "random", "ceiling"), 0.0)
    for seed, frame in pilot["held_out"].items():
        found = {name: incremental_at_capacity(score, frame["true_gain"], CAPACITY)
                 for name, score in orders(pilot, frame, seed).items()}
        print(seed, {name: round(pounds) for name, pounds in found.items()})
        assert found["model"] > found["risk order"], seed
        assert found["model"] > found["random"], seed
        assert found["ceiling"] >= found["model"]
        total = {name: total[name] + found[name] for name in total}
    assert total["model"] > 1.2 * total["risk order"]
    assert total["model"] > 1.5 * total["random"]
    assert total["model"] > total["balance first"]


def test_a_model_trained_on_shuffled_treatment_learns_nothing_useful(pilot) -> None:
    """The test can fail: without the randomised contrast the same learner falls to random's level."""
    for seed, frame in pilot["held_out"].items():
        useless = share_of_ceiling(pilot["shuffled"].predict(frame), frame["true_gain"], CAPACITY)
        assert useless < share_of_ceiling(pilot["model"].predict(frame), frame["true_gain"], CAPACITY) - 0.05, seed


# -- on randomised rows alone: Qini and AUUC ---------------------------------------------------------------------------
def test_qini_and_auuc_of_the_model_beat_random_on_held_out_pilots(pilot) -> None:
    for seed, frame in pilot["held_out"].items():
        effect, random = pilot["model"].predict(frame), np.random.default_rng(seed).random(len(frame))
        model_qini = qini_coefficient(effect, frame["treated"], frame["collected"])
        random_qini = qini_coefficient(random, frame["treated"], frame["collected"])
        print(seed, "qini", round(model_qini, 1), "random", round(random_qini, 1))
        assert model_qini > random_qini + 5, seed
        assert auuc(effect, frame["treated"], frame["collected"]) > auuc(random, frame["treated"], frame["collected"])


def qini_by_hand(scores: np.ndarray, treated: np.ndarray, outcome: np.ndarray) -> np.ndarray:
    """Radcliffe's Qini at each depth, written out plainly: a loop over the top k rows."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    values = [0.0]
    for k in range(1, len(scores) + 1):
        top = np.zeros(len(scores), dtype=bool)
        top[order[:k]] = True
        y_t, y_c = outcome[top & (treated == 1)].sum(), outcome[top & (treated == 0)].sum()
        n_t, n_c = (top & (treated == 1)).sum(), (top & (treated == 0)).sum()
        values.append(y_t - (y_c * n_t / n_c if n_c else 0.0))
    return np.array(values)


def test_the_qini_curve_is_the_textbook_one_on_a_hand_example() -> None:
    scores = np.array([0.9, 0.1, 0.7, 0.5, 0.3, 0.8])
    treated = np.array([1, 0, 0, 1, 1, 0])
    outcome = np.array([100.0, 20.0, 10.0, 50.0, 0.0, 40.0])
    curve = qini_curve(scores, treated, outcome)
    # By hand, order 0.9 (T 100), 0.8 (C 40), 0.7 (C 10), 0.5 (T 50), 0.3 (T 0), 0.1 (C 20):
    # k=1: 100; k=2: 100 - 40*1/1 = 60; k=3: 100 - 50*1/2 = 75; k=4: 150 - 50*2/2 = 100; k=5: 150 - 50*3/2 = 75;
    # k=6: 150 - 70*3/3 = 80.
    assert curve["qini"].tolist() == pytest.approx([0, 100, 60, 75, 100, 75, 80])
    assert curve["qini"].to_numpy() == pytest.approx(qini_by_hand(scores, treated, outcome))
    assert curve["fraction"].tolist() == pytest.approx([k / 6 for k in range(7)])
    # Estimated pounds had all the top k been contacted: the arms' mean difference x k (k=4: 75 - 25 = 50, x4).
    assert curve["incremental"].iloc[4] == pytest.approx((150 / 2 - 50 / 2) * 4)
    # The coefficient: the area between the curve and random's straight line, per treated row.
    fraction = np.arange(7) / 6
    gap = qini_by_hand(scores, treated, outcome) - fraction * 80
    area = float(np.sum((gap[1:] + gap[:-1]) / 2 * np.diff(fraction)))
    assert qini_coefficient(scores, treated, outcome) == pytest.approx(area / 3)
    assert qini_coefficient(scores[::-1] * 0, treated, outcome) != pytest.approx(area / 3)


def test_incremental_at_capacity_sums_the_true_gains_of_the_top_rows() -> None:
    scores = np.array([5.0, 1.0, 4.0, 3.0])
    gains = np.array([10.0, 100.0, -5.0, 20.0])
    assert incremental_at_capacity(scores, gains, 2) == 5.0
    assert incremental_at_capacity(scores, gains, 0.5) == 5.0
    assert incremental_at_capacity(gains, gains, 2) == 120.0  # the ceiling
    assert share_of_ceiling(scores, gains, 2) == pytest.approx(5 / 120)
    with pytest.raises(ValueError):
        incremental_at_capacity(scores, gains[:3], 2)


# -- the estimator contract --------------------------------------------------------------------------------------------
def test_the_estimator_follows_the_scikit_learn_contract(pilot) -> None:
    from training.config import load_params

    params = load_params("contact_uplift")["model"]
    assert {k: v for k, v in params.items() if k != "lightgbm"} == {
        k: v for k, v in ContactUplift().get_params().items() if k != "lightgbm"}
    assert params["lightgbm"] == LIGHTGBM_DEFAULTS
    unfitted = ContactUplift(learner="t", num_boost_round=20)
    assert unfitted.get_params()["learner"] == "t" and not [a for a in vars(unfitted) if a.endswith("_")]
    with pytest.raises(NotFittedError):
        unfitted.predict(pilot["train"].head())
    small = pilot["train"].head(3000)
    fitted = clone(unfitted).fit(small[FEATURES], small["collected"], small["treated"])
    assert fitted.propensity_ == pytest.approx(small["treated"].mean())
    again = clone(unfitted).fit(small[FEATURES], small["collected"], small["treated"])
    assert np.array_equal(fitted.predict(small), again.predict(small))  # fixed seed
    shuffled_columns = small[FEATURES[::-1] + ["tenancy_id"]]
    assert np.array_equal(fitted.predict(small), fitted.predict(shuffled_columns))  # read by name
    restored = ContactUplift.from_json(fitted.to_json())
    assert np.allclose(restored.predict(small), fitted.predict(small))
    with pytest.raises(ValueError):
        ContactUplift().fit(small[FEATURES], small["collected"], small["treated"] * 2)


# -- registration and gates --------------------------------------------------------------------------------------------
def test_registered_as_challenger_and_champion_only_when_its_gates_pass(pilot, tmp_path) -> None:
    from tests.support.homes import isolated_home
    from training.config import load_params
    from training.promotion import promote
    from training.registry import CHALLENGER, UPLIFT_MODEL, NoChampion, configure, experiment
    from training.settings import get_settings
    from training.uplift import load_uplift, register_uplift

    held_out = pd.concat(pilot["held_out"].values(), ignore_index=True)
    params = load_params("contact_uplift")
    with isolated_home(tmp_path / "home"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        settings = get_settings()
        good = holdout_metrics(pilot["model"], held_out, params["capacity"])
        print({k: round(v, 1) for k, v in good.items()})
        ref = register_uplift(settings, pilot["model"], good, params)
        assert ref.version == "1" and ref.name == UPLIFT_MODEL
        with pytest.raises(NoChampion):
            load_uplift(settings)
        decision = promote(settings, UPLIFT_MODEL)
        assert decision.promoted and decision.failed_gates == []
        champion = load_uplift(settings)
        assert champion.ref.version == "1"
        assert np.allclose(champion.predict(held_out), pilot["model"].predict(held_out))

        useless = holdout_metrics(pilot["shuffled"], held_out, params["capacity"])
        print({k: round(v, 1) for k, v in useless.items()})
        assert register_uplift(settings, pilot["shuffled"], useless, params).version == "2"
        refused = promote(settings, UPLIFT_MODEL)
        assert not refused.promoted and any("qini" in gate for gate in refused.failed_gates), refused.failed_gates
        assert load_uplift(settings).ref.version == "1"
        assert load_uplift(settings, CHALLENGER).ref.version == "2"

        client = configure(settings)
        decisions = {run.data.tags["version"]: run.data.tags["decision"] for run in client.search_runs(
            [experiment(settings, "promotions")], f"tags.model = '{UPLIFT_MODEL}'")}
        assert decisions == {"1": "promoted", "2": "refused"}
        logged = client.get_run(ref.run_id).data
        assert logged.metrics["qini_coefficient"] == pytest.approx(good["qini_coefficient"])
        assert logged.params["model.learner"] == "x"
