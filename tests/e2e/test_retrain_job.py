"""The monthly `retrain` job run the way the scheduler runs it (`arrears.schedule.run_job`) on a home of its own with
a champion already serving: each challenger waits for a data scientist, who approves it (it becomes champion) or
refuses it (the champion stays), through the same functions as `arrears promote --approve/--refuse` and the models
page; every decision is in the hash-chained audit trail, which still verifies. Real Feast, MLflow and LightGBM.
"""

from __future__ import annotations

import warnings

import pytest
from starlette.testclient import TestClient

from arrears.decisions import approve_recorded, hold_recorded, promote_recorded, refuse_recorded
from arrears.schedule import run_job, schedule_settings
from casework.store import open_audit
from serving.runs.worklist import Worklister
from serving.settings import get_settings
from serving.web.app import build_app
from tests.support.homes import isolated_home
from tests.support.portfolios import featurised_portfolio
from training import approval, config, promotion, registry
from training.promotion import TRAINED


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> dict:
    """A small portfolio ingested and featurised: what the monthly retrain trains on (no model yet)."""
    root = tmp_path_factory.mktemp("retrain")
    with isolated_home(root / "home"):
        featurised_portfolio(get_settings(), root, n_tenancies=300, seed=5)
    return {"root": root}


def _champion(settings, model: str) -> str | None:
    try:
        return registry.model_by_alias(settings, model, registry.CHAMPION).version
    except registry.NoChampion:
        return None


def _decisions(settings) -> list[dict]:
    with open_audit(settings) as log:
        entries = log.entries()
        assert log.verify().ok, log.verify()
    return [{"actor": e["actor"], "role": e["role"], "action": e["action"], **e["detail"]}
            for e in entries.to_dict("records") if e["action"] in ("model_promoted", "promotion_refused")]


def test_retrain_leaves_challengers_waiting_for_a_person_who_approves_or_refuses(served: dict) -> None:
    """The job trains once here (a training is most of this module's time); the next test builds on its models."""
    risk, payment = registry.RISK_MODEL, registry.PAYMENT_MODEL
    with isolated_home(served["root"] / "home"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        settings, schedule = schedule_settings()
        assert settings.retrain_promotes is False  # the default: a person signs off
        record = run_job(settings, schedule, "retrain")
        assert record["status"] == "succeeded", record
        outputs = record["outputs"]
        for model in TRAINED:  # each challenger passed its gates and waits; no champion appeared
            assert outputs[model]["gates"] == "passed" and outputs[model]["waiting_for_approval"], outputs
            assert outputs[model]["promoted"] is False and "--approve" in outputs[model]["next"]
            assert _champion(settings, model) is None
            assert approval.waiting(settings, model).version == outputs[model]["version"]
        assert "worklist_run" not in outputs and not record["alert_kinds"]

        with pytest.raises(LookupError, match="not the waiting challenger"):  # the version the person looked at
            approve_recorded(settings, risk, version="999", actor="dana", role="data_scientist")
        with pytest.raises(ValueError, match="needs a reason"):
            refuse_recorded(settings, payment, "  ", actor="dana", role="data_scientist")

        decision = approve_recorded(settings, risk, version=outputs[risk]["version"], reason="beats the baselines",
                                    actor="dana", role="data_scientist")
        assert decision.promoted and _champion(settings, risk) == outputs[risk]["version"]
        assert approval.waiting(settings, risk) is None
        refused = refuse_recorded(settings, payment, "coverage drifts in December", actor="dana",
                                  role="data_scientist")
        assert refused == outputs[payment]["version"] and _champion(settings, payment) is None
        assert approval.waiting(settings, payment) is None
        with pytest.raises(ValueError, match="does not wait"):  # a refusal is final: neither approval nor the gates
            approve_recorded(settings, payment, actor="dana", role="data_scientist")
        assert not promote_recorded(settings, payment).promoted and _champion(settings, payment) is None
        decisions = _decisions(settings)
    approved = [d for d in decisions if d.get("approved_by_person")]
    assert [(d["actor"], d["role"], d["action"], d["model"], d["version"], d["reason"]) for d in approved] == [
        ("dana", "data_scientist", "model_promoted", risk, outputs[risk]["version"], "beats the baselines")]
    by_person = [d for d in decisions if d.get("refused_by_person")]
    assert [(d["actor"], d["role"], d["model"], d["version"], d["reason"]) for d in by_person] == [
        ("dana", "data_scientist", payment, outputs[payment]["version"], "coverage drifts in December")]


def _challenger_like_the_last(settings, model: str) -> str:
    """A new version of `model` registered from its latest version's own run, as a training registers one (so its
    evidence is real and passes the ordinary gates) and made the challenger: a retrain's result without retraining."""
    import mlflow

    client = registry.configure(settings)
    latest = registry.model_by_alias(settings, model, registry.CHALLENGER)
    version = str(mlflow.register_model(f"runs:/{latest.run_id}/model", model).version)
    for key, value in latest.tags.items():
        if key not in ("promotion", "previous_champion"):
            client.set_model_version_tag(model, version, key, value)
    client.set_registered_model_alias(model, registry.CHALLENGER, version)
    return version


def test_a_challenger_its_gates_refuse_cannot_be_approved_and_the_page_approves_one_that_waits(
        served: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """What `retrain` does with each challenger it trains (`hold_recorded`), on challengers registered from the runs
    the test before trained (it runs first: this module's tests stay on one worker, in order). With the risk model's
    quality floor raised above any model (its parameters are what is changed, not the gates) the risk challenger is
    refused by its gates and no approval makes it champion; the payment-date challenger waits, and the models
    page's form approves it (auth is open on this embedded home: the principal is an admin)."""
    load = config.load_params

    def strict(name: str) -> dict:
        params = load(name)
        if name == "arrears_risk":
            params["gates"]["min_auc"] = 0.999
        return params

    risk, payment = registry.RISK_MODEL, registry.PAYMENT_MODEL
    with isolated_home(served["root"] / "home"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        settings = get_settings()
        before = _champion(settings, risk)
        assert before is not None  # approved in the test before
        _challenger_like_the_last(settings, risk)
        monkeypatch.setattr(promotion, "load_params", strict)
        refused = hold_recorded(settings, risk)
        assert not refused.waiting and refused.failed_gates[0].startswith("quality floor"), refused
        with pytest.raises(ValueError, match="does not wait"):
            approve_recorded(settings, risk, actor="dana", role="data_scientist")
        assert _champion(settings, risk) == before

        version = _challenger_like_the_last(settings, payment)
        assert hold_recorded(settings, payment).waiting
        with TestClient(build_app(Worklister(settings)), base_url="http://arrears.test") as client:
            page = client.get("/models")
            assert page.status_code == 200 and f"Version {version} waits for your decision" in page.text, page.text
            foreign = client.post("/models/approve", data={"model": payment, "version": version},
                                  headers={"origin": "https://elsewhere.example"}, follow_redirects=False)
            assert foreign.status_code == 403 and _champion(settings, payment) != version
            done = client.post("/models/approve", data={"model": payment, "version": version,
                                                        "reason": "checked the calibration plot"},
                               follow_redirects=False)
            assert done.status_code == 303 and done.headers["location"].endswith("/models#model-payment_date")
            assert _champion(settings, payment) == version
            page = client.get("/models")
        assert "checked the calibration plot" in page.text and "waits for your decision" not in page.text
        last = _decisions(settings)[-1]
        assert (last["role"], last["action"], last["version"], last["reason"]) == (
            "admin", "model_promoted", version, "checked the calibration plot")
