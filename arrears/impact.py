"""What working the list causes, replayed in a world that knows (`simulator.causal`): the evidence behind the
experiments, the uplift ranking and the treatment-aware retrain (issue 29; figures in bench/README.md).

Officers here work a list as the service builds one: the `ready` cases of each patch, highest score first, up to the
patch's weekly capacity, never a tenancy contacted in the last four weeks (the contact limit), never a tenancy an
experiment holds out. The arm is the service's own assignment (`serving.runs.experiments.draw`: a hash of the
experiment and the tenancy), the risk model is `training.risk` with the risk model's own parameters, trained on
the world's history with the risk label (`simulator.causal.growth_labels`), and the uplift model is
`training.uplift`, trained only on a randomised pilot.

Four studies, each a function returning a table:

* `coverage_study`: portfolios with known effects, an experiment on each (half the ready cases held out), its
  effect estimated as the report estimates it (`monitoring.experiments.estimate`, variance reduced with pre-period
  arrears): does the 95% interval cover the true effect (both arms' potential outcomes, from forks), and are the
  arms balanced on every pre-period feature?
* `policy_study`: risk top-k, expected-gain top-k, balance-first and random at the same capacity over 12 weeks:
  pounds collected beyond contacting nobody (the same world, forked), arrangements agreed, contacts made; and the
  ceiling (the true expected gain) for the uplift model's share of it.
* `retrain_study`: 26 weeks of the service working its own list and retraining every four weeks, naive (every
  outcome, contacted or not) against treatment-aware (held-out tenancies only, weighted by their known assignment
  probability): each model's AUC, among the ready cases, on the outcomes the world would have had with no contact.
* `randomised_pilot`: the data the uplift model learns from.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import roc_auc_score

from monitoring.experiments import balance, estimate
from serving.runs.experiments import HOLDOUT, arm_for, draw
from simulator.causal import CausalWorld, WorldSpec, growth_labels
from training import risk
from training.config import load_params
from training.treatment import Interventions, treatment_weights
from training.uplift import ContactUplift

#: The features the world shows, named as in `features.catalogue`.
WORLD_FEATURES: tuple[str, ...] = (
    "balance", "arrears_weeks", "balance_change_4w", "balance_change_13w", "peak_arrears_weeks_26w",
    "weeks_since_clear", "days_since_last_payment", "payments_4w", "payments_13w", "paid_to_charged_4w",
    "paid_to_charged_13w", "missed_periods_26w", "arrangement_active", "days_since_contact", "dispute_open",
    "breathing_space_active", "weekly_rent")
#: Pre-period covariates of the experiment's estimate (known at assignment).
COVARIATES: tuple[str, ...] = ("balance", "balance_change_13w", "payments_4w")
#: No tenancy is contacted again within this many days of a contact.
CONTACT_LIMIT_DAYS = 28.0
POLICIES: tuple[str, ...] = ("risk", "gain", "balance", "random")


# -- the list and its scores --------------------------------------------------------------------------------------

def work_the_list(seen: pd.DataFrame, score: np.ndarray, capacity: int, held_out: np.ndarray | None = None) -> list:
    """The tenancies officers contact this week: each patch's `ready` cases by `score` (highest first), up to
    `capacity` a patch, skipping the held-out and anyone contacted within the contact limit."""
    listed = (seen["readiness_state"].to_numpy() == "ready") & (seen["days_since_contact"].to_numpy()
                                                                  >= CONTACT_LIMIT_DAYS)
    if held_out is not None:
        listed &= ~held_out
    frame = pd.DataFrame({"tenancy_id": seen["tenancy_id"].to_numpy(), "patch": seen["patch"].to_numpy(),
                          "score": np.asarray(score, dtype=float)})[listed]
    frame = frame.sort_values(["patch", "score"], ascending=[True, False], kind="stable")
    return frame.groupby("patch", sort=False).head(capacity)["tenancy_id"].tolist()


def holdout_mask(tenancy_ids: Sequence[str], experiment: str, share: float) -> np.ndarray:
    """True for the tenancies the service's assignment puts in the holdout arm of `experiment`."""
    return arm_for([draw(experiment, t) for t in tenancy_ids], share) == HOLDOUT


def risk_params() -> dict:
    return dict(load_params("arrears_risk")["lightgbm"])


@dataclass
class RiskModel:
    """The risk model (`training.risk`) fitted on world rows."""

    booster: object
    calibration: object

    def __call__(self, seen: pd.DataFrame) -> np.ndarray:
        return risk.score(self.booster, seen, list(WORLD_FEATURES), self.calibration)["risk_score"].to_numpy()


def fit_risk(rows: pd.DataFrame, weights: np.ndarray | None = None, seed: int = 0) -> RiskModel:
    """Fit on `rows` (features and `label`), weighted as `training.risk` weighs them, 20% of the tenancies kept
    for early stopping and calibration."""
    names = list(WORLD_FEATURES)
    if weights is not None:
        rows = rows.assign(**{risk.WEIGHT: weights})
    valid_ids = holdout_mask(rows["tenancy_id"].unique(), f"validation-{seed}", 0.2)
    valid_set = set(rows["tenancy_id"].unique()[valid_ids])
    in_valid = rows["tenancy_id"].isin(valid_set).to_numpy()
    return RiskModel(*risk.fit_and_calibrate(rows[~in_valid], rows[in_valid], names, risk_params()))


def observe_weeks(world: CausalWorld, weeks: int, choose: Callable[[pd.DataFrame], list] | None = None
                  ) -> list[pd.DataFrame]:
    """Step `weeks` weeks, officers contacting whom `choose` picks from each week's observation (nobody without
    it); the observations, one frame a week, taken before each week's contacts."""
    frames = []
    for _ in range(weeks):
        seen = world.observe()
        frames.append(seen)
        world.step(choose(seen) if choose else [])
    return frames


def labelled(world: CausalWorld, frames: Sequence[pd.DataFrame], horizon_weeks: int = 8) -> pd.DataFrame:
    """The frames whose label has matured in `world`, each with its risk label."""
    out = []
    for seen in frames:
        week = int(seen["week"].iloc[0])
        if world.week >= week + horizon_weeks:
            out.append(seen.assign(label=growth_labels(world, week, horizon_weeks).to_numpy()))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def untreated_auc(world: CausalWorld, model: RiskModel, horizon_weeks: int = 8) -> float:
    """The model's AUC among today's ready cases on the outcome each would have had with nobody contacted from now:
    the world is forked and stepped `horizon_weeks` with no contact."""
    seen = world.observe()
    twin = world.fork()
    for _ in range(horizon_weeks):
        twin.step([])
    label = growth_labels(twin, world.week, horizon_weeks).to_numpy()
    ready = seen["readiness_state"].to_numpy() == "ready"
    return float(roc_auc_score(label[ready], model(seen)[ready]))


# -- the randomised pilot (what the uplift model learns from) -----------------------------------------------------

def randomised_pilot(seed: int, tenancies: int = 4000, share: float = 0.5, weeks: int = 4,
                     experiment: str = "uplift-pilot") -> pd.DataFrame:
    """One randomised pilot: a new world's ready cases (after 26 quiet weeks), half contacted by the service's
    assignment (`treated`), everyone's pounds `collected` over the next `weeks` weeks, the true `expected_gain`
    of a contact at the pilot's start, and the features as they were."""
    world = CausalWorld(WorldSpec(tenancies=tenancies, weeks=26 + weeks + 1), seed=seed)
    observe_weeks(world, 26)
    seen = world.observe()
    ready = seen[seen["readiness_state"] == "ready"].reset_index(drop=True)
    treated = ~holdout_mask(ready["tenancy_id"].tolist(), experiment, share)
    gain = world.expected_gain().reindex(ready["tenancy_id"]).to_numpy()
    world.step(ready["tenancy_id"][treated])
    for _ in range(weeks - 1):
        world.step([])
    return ready.assign(treated=treated.astype(int), collected=world.collected(ready["tenancy_id"], weeks),
                        expected_gain=gain)


# -- 1. does the experiment's interval cover the truth? -----------------------------------------------------------

def experiment_once(seed: int, tenancies: int = 10_000, share: float = 0.5, outcome_weeks: int = 8,
                    winsorise: float = 0.01, experiment: str = "coverage") -> dict:
    """One portfolio, one experiment: after 26 quiet weeks, the ready cases are assigned (`share` held out), the
    treatment arm is contacted, and the outcome is the change in arrears over `outcome_weeks` weeks (winsorised at
    the `winsorise` and 1 - `winsorise` quantiles, as the report does). The truth comes from two forks of the same
    world: every assigned tenancy contacted, and none. Returns the estimate, the true effect, whether the interval
    covers it, and the largest standardised difference between the arms on any pre-period feature."""
    world = CausalWorld(WorldSpec(tenancies=tenancies, weeks=26 + outcome_weeks + 1), seed=seed)
    observe_weeks(world, 26)
    seen = world.observe()
    units = seen[seen["readiness_state"] == "ready"].reset_index(drop=True)
    ids = units["tenancy_id"].tolist()
    held = holdout_mask(ids, experiment, share)
    units["arm"] = np.where(held, "holdout", "treatment")

    def run(contacted: Sequence[str]) -> np.ndarray:
        twin = world.fork()
        twin.step(contacted)
        for _ in range(outcome_weeks - 1):
            twin.step([])
        return twin.balance_at(twin.week, ids) - world.balance_at(world.week, ids)

    observed = run(units["tenancy_id"][~held])
    if_all, if_none = run(ids), run([])
    low, high = np.quantile(observed, [winsorise, 1 - winsorise])
    units["arrears_change"] = np.clip(observed, low, high)
    truth = float(np.mean(np.clip(if_all, low, high) - np.clip(if_none, low, high)))
    found = estimate(units, "arrears_change", covariates=COVARIATES)
    smd = balance(units, list(WORLD_FEATURES))["smd"].abs()
    return {"seed": seed, "units": len(units), "holdout": int(held.sum()), "true_effect": truth,
            "estimate": found.effect, "low": found.low, "high": found.high, "covers": found.low <= truth <= found.high,
            "unadjusted_se": found.unadjusted_se, "se": found.se, "max_abs_smd": float(smd.max()),
            "worst_feature": str(list(WORLD_FEATURES)[int(smd.to_numpy().argmax())])}


def coverage_study(seeds: Sequence[int] = tuple(range(20)), **kwargs) -> pd.DataFrame:
    """`experiment_once` on each seed: a row a portfolio."""
    return pd.DataFrame([experiment_once(seed, **kwargs) for seed in seeds])


# -- 2. which order collects most at the same capacity? -----------------------------------------------------------

def train_uplift(pilot_seeds: Sequence[int] = (1001, 1002, 1003), tenancies: int = 4000):
    """The uplift model (`training.uplift`) fitted on randomised pilots in other portfolios of the same kind."""
    pilot = pd.concat([randomised_pilot(seed, tenancies) for seed in pilot_seeds], ignore_index=True)
    return ContactUplift().fit(pilot[list(WORLD_FEATURES)], pilot["collected"], pilot["treated"])


def _scores(policy: str, seen: pd.DataFrame, risk_model: RiskModel, uplift, rng: np.random.Generator,
            world: CausalWorld) -> np.ndarray:
    if policy == "risk":
        return risk_model(seen)
    if policy == "gain":
        return np.asarray(uplift.predict(seen[list(WORLD_FEATURES)]), dtype=float)
    if policy == "balance":
        return seen["balance"].to_numpy(dtype=float)
    if policy == "random":
        return rng.random(len(seen))
    if policy == "ceiling":
        return world.expected_gain().to_numpy()
    raise ValueError(f"Unknown policy {policy!r}: one of {', '.join((*POLICIES, 'ceiling'))}")


def policy_once(seed: int, uplift, tenancies: int = 6000, weeks: int = 12, capacity: int = 15,
                policies: Sequence[str] = (*POLICIES, "ceiling")) -> list[dict]:
    """One portfolio: its risk model trained on 26 quiet weeks, then each policy works the list for `weeks` weeks
    on a fork of the same world. Pounds are counted beyond a fork where nobody is contacted."""
    world = CausalWorld(WorldSpec(tenancies=tenancies, weeks=26 + 8 + weeks + 1), seed=seed)
    history = observe_weeks(world, 26 + 8)
    model = fit_risk(labelled(world, history), seed=seed)
    nobody = world.fork()
    observe_weeks(nobody, weeks)
    base = nobody.collected(weeks=weeks).sum()
    rows = []
    for policy in policies:
        twin = world.fork()
        agreed_before = twin.arrangements_agreed.sum()
        rng = np.random.default_rng(seed)
        observe_weeks(twin, weeks, lambda seen, p=policy, w=twin, r=rng: work_the_list(
            seen, _scores(p, seen, model, uplift, r, w), capacity))
        rows.append({"seed": seed, "policy": policy, "incremental_pounds": float(twin.collected(weeks=weeks).sum()
                                                                                 - base),
                     "arrangements": int(twin.arrangements_agreed.sum() - agreed_before),
                     "contacts": int(twin.contacted[twin.t - weeks:twin.t].sum())})
    return rows


def policy_study(seeds: Sequence[int] = tuple(range(10)), uplift=None, **kwargs) -> pd.DataFrame:
    """`policy_once` on each seed (one uplift model for all, trained on pilots in other portfolios)."""
    uplift = uplift if uplift is not None else train_uplift()
    return pd.DataFrame([row for seed in seeds for row in policy_once(seed, uplift, **kwargs)])


def t_interval(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and 95% t interval over seeds (NaN bounds with a single seed)."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, np.nan, np.nan
    half = float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))
    return mean, mean - half, mean + half


def paired_interval(study: pd.DataFrame, better: str, than: str, column: str = "incremental_pounds") -> dict:
    """The mean per-seed difference `better` - `than` with a 95% t interval over seeds."""
    wide = study.pivot(index="seed", columns="policy", values=column)
    difference, low, high = t_interval((wide[better] - wide[than]).to_numpy())
    return {"difference": difference, "low": low, "high": high, "seeds": len(wide)}


# -- 3. does retraining learn from its own interventions? --------------------------------------------------------

def _training_rows(world: CausalWorld, frames: Sequence[pd.DataFrame], now: int, window: int, every_other: bool
                   ) -> pd.DataFrame:
    """The matured, labelled rows of the last `window` weeks before `now` (every second week, as the risk model's
    `sample_every_weeks: 2`)."""
    recent = [f for f in frames if now - window <= int(f["week"].iloc[0]) < now
              and (not every_other or int(f["week"].iloc[0]) % 2 == 0)]
    return labelled(world, recent)


#: The replay's calendar: week 0 of a world is this Sunday (the treatment weights work in days).
_DAY_ZERO = pd.Timestamp("2026-01-04")


def _dated(frame: pd.DataFrame, week: np.ndarray, offset_days: int = 0) -> pd.DataFrame:
    return frame.assign(day=_DAY_ZERO + pd.to_timedelta(7 * np.asarray(week) + offset_days, unit="D"))


def aware_weights(rows: pd.DataFrame, twin: CausalWorld, listed_held: list[tuple[int, list]], share: float,
                  horizon_weeks: int) -> np.ndarray:
    """`training.treatment.treatment_weights` on a replay: the fork's contacts, and the weeks each held-out tenancy
    stood within capacity in its own queue. A row is dated its week's Sunday, a contact the Wednesday after."""
    burn = twin.spec.burn_in_weeks
    t_idx, who = np.nonzero(twin.contacted[:twin.t])
    contacts = _dated(pd.DataFrame({"tenancy_id": twin.tenancy_id[who]}), t_idx - burn, 3)
    shadow = pd.DataFrame([(t, week) for week, ids in listed_held for t in ids], columns=["tenancy_id", "week"])
    shadow = _dated(shadow, shadow["week"].to_numpy(dtype=int), 3).assign(holdout_share=share)
    dated = _dated(rows[["tenancy_id"]], rows["week"].to_numpy()).rename(columns={"day": "event_timestamp"})
    weights, _ = treatment_weights(dated, Interventions(contacts[["tenancy_id", "day"]],
                                                        shadow[["tenancy_id", "day", "holdout_share"]]),
                                   horizon_weeks)
    return weights


def retrain_once(seed: int, tenancies: int = 6000, weeks: int = 26, every: int = 4, capacity: int = 40,
                 share: float = 0.2, window: int = 26, horizon_weeks: int = 8,
                 experiment: str = "retrain-holdout", effect_scale: float = 1.0) -> pd.DataFrame:
    """26 quiet weeks (the pre-service record) train the first model; then the service works its own list for
    `weeks` weeks and retrains every `every` weeks on the last `window` weeks of matured outcomes, in forks of the
    same world: *naive* (no holdout; every outcome, the contacted included) and *aware* (`share` of tenancies held
    out by the service's assignment; rows weighted by `training.treatment.treatment_weights`, as the `retrain` job
    weights them: a row a contact touched left out, a held-out row the list would have contacted weighted
    1/`share`, the rest kept).

    A third fork where nobody is ever contacted is the yardstick: when the replay ends, every model either mode
    put in service (the first included) scores that fork's ready cases and is judged on the outcomes they go on to
    have there over the next `horizon_weeks` (untreated outcomes). The same rows judge every model, so a change
    from the first model to a later one is the model's, not a change in who is in arrears."""
    world = CausalWorld(WorldSpec(tenancies=tenancies, weeks=26 + weeks + horizon_weeks + 1,
                                  effect_scale=effect_scale), seed=seed)
    before = observe_weeks(world, 26)
    service_start = world.week
    start = fit_risk(_training_rows(world, before, service_start, window, True), seed=seed)
    held = holdout_mask(world.tenancy_id.tolist(), experiment, share)
    forks = {"naive": world.fork(), "aware": world.fork()}
    untreated = world.fork()
    models = {mode: start for mode in forks}
    frames = {mode: list(before) for mode in forks}
    listed_held: list[tuple[int, list]] = []
    in_service = [("naive", 0, start), ("aware", 0, start)]
    for week in range(weeks):
        now = service_start + week
        for mode, twin in forks.items():
            if week and week % every == 0:
                rows = _training_rows(twin, frames[mode], now, window, True)
                weights = (aware_weights(rows, twin, listed_held, share, horizon_weeks) if mode == "aware"
                           else np.ones(len(rows)))
                models[mode] = fit_risk(rows[weights > 0], weights[weights > 0], seed=seed)
                in_service.append((mode, week, models[mode]))
            seen = twin.observe()
            frames[mode].append(seen)
            score = models[mode](seen)
            if mode == "aware":  # the held-out queue, ranked apart as the service ranks it
                listed_held.append((now, work_the_list(seen, score, capacity, ~held)))
            twin.step(work_the_list(seen, score, capacity, held if mode == "aware" else None))
        untreated.step([])
    judged = untreated.observe()
    for _ in range(horizon_weeks):
        untreated.step([])
    label = growth_labels(untreated, judged["week"].iloc[0], horizon_weeks).to_numpy()
    ready = judged["readiness_state"].to_numpy() == "ready"
    return pd.DataFrame([{"seed": seed, "effect_scale": effect_scale, "mode": mode, "week": week,
                          "auc_untreated": float(roc_auc_score(label[ready], model(judged)[ready]))}
                         for mode, week, model in in_service])


def retrain_study(seeds: Sequence[int] = (0, 1, 2), **kwargs) -> pd.DataFrame:
    """`retrain_once` on each seed: a row per seed, mode and retrain."""
    return pd.concat([retrain_once(seed, **kwargs) for seed in seeds], ignore_index=True)


def policy_summary(study: pd.DataFrame, against: str = "risk") -> pd.DataFrame:
    """Per policy: mean incremental pounds with a 95% t interval over seeds, the paired difference from `against`
    with its interval, mean arrangements agreed and contacts made."""
    rows = []
    for policy, group in study.groupby("policy", sort=False):
        mean, low, high = t_interval(group["incremental_pounds"].to_numpy())
        versus = paired_interval(study, policy, against) if policy != against and against in set(study["policy"]) \
            else {"difference": 0.0, "low": np.nan, "high": np.nan}
        rows.append({"policy": policy, "incremental_pounds": mean, "low": low, "high": high,
                     f"vs_{against}": versus["difference"],
                     f"vs_{against}_low": versus["low"], f"vs_{against}_high": versus["high"],
                     "arrangements": group["arrangements"].mean(), "contacts": group["contacts"].mean()})
    return pd.DataFrame(rows)
