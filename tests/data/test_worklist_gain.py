"""The worklist by expected gain (issue 29, item 4) through real recorded runs on a small simulated portfolio with a
trained and promoted risk model: without an uplift champion a run records no expected gains and a list by gain is
refused in words that say what to do; with one (registered and made champion in the temporary MLflow home), each
ready case's expected gain is the champion's prediction on the live features, a list by gain holds each patch's
ready cases of highest expected gain within its capacity, highest first, and the list by risk is unchanged."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.store.offline import live_tenancies
from serving.runs.record import record_run
from serving.runs.store import open_runs
from serving.runs.worklist import NoUplift, Worklister
from tests.support.cli import invoke, ok, words
from tests.support.homes import isolated_home
from training import registry
from training.uplift import UPLIFT_FEATURES, ContactUplift, load_uplift, register_uplift

END = pd.Timestamp("2026-10-31")
CAPACITY = 4
SMALL = {"objective": "regression", "learning_rate": 0.1, "num_leaves": 4, "min_data_in_leaf": 20, "seed": 3,
         "deterministic": True, "force_row_wise": True, "num_threads": 1, "verbose": -1}


@pytest.fixture(scope="module")
def gains(tmp_path_factory) -> dict:
    """A 400-tenancy portfolio featurised and its risk model promoted; a run without an uplift champion; then an
    uplift model fitted on a made-up randomised pilot over the live features, made champion, and a second run."""
    from simulator import simulate_portfolio, write_portfolio

    root = tmp_path_factory.mktemp("worklist_gain")
    with isolated_home(root / "home", ARREARS_PATCH_CAPACITY=str(CAPACITY), ARREARS_TODAY=str(END.date())):
        write_portfolio(simulate_portfolio(n_tenancies=400, years=2.0, seed=11, end_date=END.date()), root / "feeds")
        for verb in (["ingest", str(root / "feeds")], ["features"], ["train", "--model", "risk"],
                     ["promote", "--model", "arrears_risk"]):
            ok(*verb)
        from serving.settings import get_settings

        settings = get_settings()
        before = record_run(settings, force=True).run
        worklister = Worklister(settings)
        risk_before = worklister.worklist(1000)
        refused = pytest.raises(NoUplift, worklister.worklist, 1000, None, ["ready"], "gain")
        cli = invoke("worklist", "--order", "gain")

        live = live_tenancies(settings)
        rng = np.random.default_rng(0)
        pilot = pd.concat([live] * 3, ignore_index=True)
        treated = rng.random(len(pilot)) < 0.5
        stake = np.maximum(pilot["balance"].to_numpy(dtype=float), pilot["weekly_rent"].to_numpy(dtype=float))
        collected = stake * (0.2 + 0.3 * treated * (pilot["arrears_weeks"].to_numpy(dtype=float) > 2))
        collected = collected + rng.normal(0, 5, len(pilot))
        model = ContactUplift(propensity=0.5, num_boost_round=30, lightgbm=SMALL).fit(
            pilot[list(UPLIFT_FEATURES)], collected, treated.astype(int))
        ref = register_uplift(settings, model, {"qini_coefficient": 1.0})
        registry.configure(settings).set_registered_model_alias(registry.UPLIFT_MODEL, registry.CHAMPION, ref.version)
        after = record_run(settings).run  # a new uplift champion alone makes a new run
        with open_runs(settings) as store:
            rows = store.rows(after["run_id"], columns=("tenancy_id", "patch", "readiness_state", "expected_gain",
                                                        "gain_rank", "arm"))
        yield {"before": before, "after": after, "risk_before": risk_before, "refused": refused, "cli": cli,
               "risk_after": worklister.worklist(1000), "by_gain": worklister.worklist(1000, order="gain"),
               "rows": rows, "live": live, "uplift": load_uplift(settings)}


def test_without_an_uplift_champion_a_list_by_gain_is_refused_in_words(gains) -> None:
    assert gains["before"]["uplift_model_version"] is None and pd.isna(gains["before"]["expected_gains"])
    message = str(gains["refused"].value)
    assert message.startswith("no uplift model is champion yet: run a randomised pilot and `"), message
    assert gains["cli"].exit_code != 0 and "no uplift model is champion yet" in words(gains["cli"])
    assert all(row.expected_gain is None for row in gains["risk_before"].rows)


def test_a_ready_case_s_expected_gain_is_the_champion_s_prediction_on_the_live_features(gains) -> None:
    rows, after = gains["rows"], gains["after"]
    assert after["uplift_model_version"] == gains["uplift"].ref.version and after["run_id"] != gains["before"]["run_id"]
    ready = rows[rows["readiness_state"] == "ready"]
    assert len(ready) >= 2 * CAPACITY and int(after["expected_gains"]) == len(ready)
    assert rows.loc[rows["readiness_state"] != "ready", "expected_gain"].isna().all()
    features = gains["live"].set_index("tenancy_id").loc[ready["tenancy_id"], list(UPLIFT_FEATURES)].reset_index()
    assert np.allclose(ready["expected_gain"].to_numpy(), gains["uplift"].predict(features))
    assert ready["expected_gain"].nunique() > 1


def test_a_list_by_gain_holds_each_patch_s_highest_gains_within_capacity(gains) -> None:
    rows, listed = gains["rows"], gains["by_gain"]
    assert listed.order == "gain" and listed.rows
    shown = [row.expected_gain for row in listed.rows]
    assert all(g is not None for g in shown) and shown == sorted(shown, reverse=True)
    ready = rows[(rows["readiness_state"] == "ready") & rows["arm"].ne("holdout")]
    expected = set()
    for _, patch in ready.groupby("patch"):
        expected |= set(patch.sort_values(["expected_gain", "tenancy_id"], ascending=[False, True])
                        .head(CAPACITY)["tenancy_id"])
    assert {row.tenancy_id for row in listed.rows} == expected
    assert pd.Series([row.patch for row in listed.rows]).value_counts().max() <= CAPACITY
    assert all(row.reasons for row in listed.rows), "every case listed by gain is explained"
    by_risk = {row.tenancy_id for row in gains["risk_after"].rows}
    assert expected != by_risk, "the gain order should list other cases than the risk order on this portfolio"


def test_the_list_by_risk_is_unchanged(gains) -> None:
    before, after = gains["risk_before"], gains["risk_after"]
    assert after.order == "risk" and after.run_id != before.run_id
    assert [(r.tenancy_id, r.rank, r.risk_score) for r in after.rows] == [
        (r.tenancy_id, r.rank, r.risk_score) for r in before.rows]
    assert all(row.expected_gain is not None for row in after.rows if row.readiness_state == "ready")
