"""The contact-uplift model: what a contact achieves per tenancy, in pounds collected over the next four weeks,
learnt only from randomised data, and how an order of cases is judged by it.

Ranking by risk is not ranking by what a contact achieves: a tenant who would pay anyway (a sure thing) and one who
will not pay whatever is done (a lost cause) both score high on risk. The cases worth a contact are those whose
payment depends on it. That dependence can only be learnt from cases where who was contacted was decided by chance
(an experiment's arms, a randomised pilot): learnt from the list's own contacts it would be the list's bias.

**The learner** (`ContactUplift`): a meta-learner over LightGBM regressors. Rows are ``features + treated (0/1,
randomly assigned with a known probability) + collected (pounds over the next 4 weeks)``.

* ``learner="x"`` (the default), the X-learner (Künzel et al. 2019): one outcome model per arm (mu0, mu1); each
  treated row's imputed effect ``collected - mu0(x)`` and each control row's ``mu1(x) - collected``; an effect model
  on each (tau1, tau0); the effect ``e * tau0(x) + (1 - e) * tau1(x)`` with ``e`` the known propensity.
* ``learner="t"``, the T-learner: ``mu1(x) - mu0(x)``.

Kept: the X-learner, measured against the T-learner on the causal simulator (`docs/experiments.md`, "Uplift"):
their shares of the uplift ceiling tie (within 0.006 of each other over 16 held-out worlds with 3 to 24 training
worlds, and with 20% or 80% of the rows treated; the spread over worlds is ±0.04), and the X-learner's Qini
coefficient on the held-out randomised rows is as high or higher in every comparison (£17.2 against £16.5 per
treated tenancy with 8 training worlds, £16.6 against £14.7 with 3). Its second stage fits the effect itself, a
smaller and smoother target than the whole outcome (rent, catch-ups, arrangements: a standard deviation of ~£390
against a mean effect of ~£110), and weighting the two effect models by the known propensity suits a holdout's
unbalanced arms (10-20% held out) without a propensity model.

Outcomes are modelled **per pound at stake** (``scale="arrears"``: collected / max(balance, weekly_rent), the
prediction multiplied back; ``"rent"``: per week of rent; None: pounds): a contact's effect is a share of the
arrears (a catch-up, an arrangement's top-ups) plus a share of the rent (a better chance of paying it), so per pound
at stake it depends on habits more than on the size of the debt, and one tree fits debts of every size.

**Evaluation.** On randomised rows (where no truth is known): `qini_curve`, `qini_coefficient`, `auuc`,
`incremental_by_order` (the incremental pounds an order finds at a capacity, estimated from the arms). On a
simulator (where the truth is known): `incremental_at_capacity` (the true expected pounds the top cases of an order
bring in) and `share_of_ceiling` (that, over the top cases by the true gain itself: the uplift ceiling).

**Registration** (the one I/O here, at the end): `register_uplift` logs a fitted model, its parameters and held-out
metrics as an MLflow run and registers it as the `challenger` of `contact_uplift`; `training.promotion.promote`
gates it (`training/params/contact_uplift.yaml`) like every model; `load_uplift` gives the champion with
``.predict(frame)``. The model is stored as LightGBM text plus a JSON header (never a pickle), and rebuilt from them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from training import registry
from training.settings import TrainingSettings

#: The features the uplift model reads (named and meant as in `features.catalogue`): the arrears, the payment habit
#: and the circumstances a contact meets.
UPLIFT_FEATURES: tuple[str, ...] = (
    "balance", "arrears_weeks", "balance_change_4w", "balance_change_13w", "peak_arrears_weeks_26w",
    "weeks_since_clear", "days_since_last_payment", "payments_4w", "payments_13w", "paid_to_charged_4w",
    "paid_to_charged_13w", "missed_periods_26w", "arrangement_active", "days_since_contact", "dispute_open",
    "breathing_space_active", "weekly_rent",
)

#: LightGBM settings of each of the meta-learner's regressions: small, regularised, reproducible. The registered
#: model's come from `training/params/contact_uplift.yaml` (the same values, checked by the tests). One thread: a
#: fit of ~14,000 rows takes 0.6 s on one and 7-13 s on two when the machine is busy (OpenMP threads waiting on each
#: other), for the same trees.
LIGHTGBM_DEFAULTS: dict = {
    "objective": "regression", "learning_rate": 0.05, "num_leaves": 7, "min_data_in_leaf": 100,
    "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 10.0, "seed": 7,
    "deterministic": True, "force_row_wise": True, "num_threads": 1, "verbose": -1,
}
_STAGES = {"t": ("mu0", "mu1"), "x": ("mu0", "mu1", "tau0", "tau1")}
_SCALES = ("arrears", "rent", None)


class ContactUplift(BaseEstimator):
    """The effect of a contact on the pounds a tenancy pays over the next four weeks (see the module docstring).

    ``fit(X, y, treatment)``: X the features (a DataFrame, e.g. ``frame[list(UPLIFT_FEATURES)]``; its columns become
    the model's, read by name at `predict`), y the pounds collected,
    treatment 0/1 assigned at random. ``predict(X)``: the effect in pounds per row (negative: a contact costs).
    ``propensity`` is the known probability of treatment (None: the treated share of the rows fitted)."""

    def __init__(self, learner: str = "x", propensity: float | None = None, scale: str | None = "arrears",
                 num_boost_round: int = 150, lightgbm: dict | None = None) -> None:
        self.learner = learner
        self.propensity = propensity
        self.scale = scale
        self.num_boost_round = num_boost_round
        self.lightgbm = lightgbm

    # -- fitting ------------------------------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y, treatment) -> ContactUplift:
        if self.learner not in _STAGES:
            raise ValueError(f"learner must be one of {sorted(_STAGES)}, not {self.learner!r}")
        features = _frame(X)
        outcome = np.asarray(y, dtype=float)
        treated = np.asarray(treatment)
        if not np.isin(treated, (0, 1)).all():
            raise ValueError("treatment must be 0 or 1 on every row")
        treated = treated.astype(bool)
        if len(outcome) != len(features) or len(treated) != len(features):
            raise ValueError(f"X has {len(features)} rows, y {len(outcome)} and treatment {len(treated)}")
        if treated.sum() < 2 or (~treated).sum() < 2:
            raise ValueError("both arms need rows: the effect is learnt from the difference between them")
        if self.scale not in _SCALES:
            raise ValueError(f"scale must be one of {_SCALES}, not {self.scale!r}")
        needed = {"arrears": ["balance", "weekly_rent"], "rent": ["weekly_rent"], None: []}[self.scale]
        if missing := [name for name in needed if name not in features.columns]:
            raise ValueError(f"scale {self.scale!r} needs the features {missing}")
        self.feature_names_in_ = np.array(features.columns, dtype=object)
        self.n_features_in_ = features.shape[1]
        self.propensity_ = float(treated.mean() if self.propensity is None else self.propensity)
        if not 0.0 < self.propensity_ < 1.0:
            raise ValueError(f"propensity must be strictly between 0 and 1, not {self.propensity_}")
        matrix = features.to_numpy(dtype=float)
        target = outcome / self._units(features)
        mu0 = self._regress(matrix[~treated], target[~treated])
        mu1 = self._regress(matrix[treated], target[treated])
        self.boosters_ = {"mu0": mu0, "mu1": mu1}
        if self.learner == "x":
            imputed_treated = target[treated] - mu0.predict(matrix[treated])
            imputed_control = mu1.predict(matrix[~treated]) - target[~treated]
            self.boosters_["tau1"] = self._regress(matrix[treated], imputed_treated)
            self.boosters_["tau0"] = self._regress(matrix[~treated], imputed_control)
        return self

    def _regress(self, matrix: np.ndarray, target: np.ndarray) -> lgb.Booster:
        params = {**(LIGHTGBM_DEFAULTS if self.lightgbm is None else self.lightgbm)}
        data = lgb.Dataset(matrix, label=target, feature_name=list(self.feature_names_in_), free_raw_data=True)
        return lgb.train(params, data, num_boost_round=self.num_boost_round)

    def _units(self, features: pd.DataFrame) -> np.ndarray:
        if self.scale is None:
            return np.ones(len(features))
        rent = np.maximum(features["weekly_rent"].to_numpy(dtype=float), 1.0)
        if self.scale == "rent":
            return rent
        return np.maximum(features["balance"].to_numpy(dtype=float), rent)

    # -- predicting ---------------------------------------------------------------------------------------------
    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """The effect of a contact in pounds over the next four weeks, one per row."""
        if not hasattr(self, "boosters_"):
            raise NotFittedError("ContactUplift is not fitted yet: call fit(X, y, treatment) first")
        features = _frame(X)
        missing = [name for name in self.feature_names_in_ if name not in features.columns]
        if missing:
            raise ValueError(f"missing features: {missing}")
        features = features[list(self.feature_names_in_)]
        matrix = features.to_numpy(dtype=float)
        b = self.boosters_
        if self.learner == "t":
            effect = b["mu1"].predict(matrix) - b["mu0"].predict(matrix)
        else:
            e = self.propensity_
            effect = e * b["tau0"].predict(matrix) + (1 - e) * b["tau1"].predict(matrix)
        return effect * self._units(features)

    # -- storing (text, never a pickle) -------------------------------------------------------------------------
    def to_json(self) -> str:
        if not hasattr(self, "boosters_"):
            raise NotFittedError("only a fitted ContactUplift can be stored")
        return json.dumps({"params": self.get_params(), "feature_names": list(self.feature_names_in_),
                           "propensity": self.propensity_,
                           "boosters": {k: v.model_to_string() for k, v in self.boosters_.items()}})

    @classmethod
    def from_json(cls, text: str) -> ContactUplift:
        stored = json.loads(text)
        model = cls(**stored["params"])
        model.feature_names_in_ = np.array(stored["feature_names"], dtype=object)
        model.n_features_in_ = len(model.feature_names_in_)
        model.propensity_ = float(stored["propensity"])
        model.boosters_ = {k: lgb.Booster(model_str=v) for k, v in stored["boosters"].items()}
        if set(model.boosters_) != set(_STAGES[model.learner]):
            raise ValueError(f"a {model.learner}-learner needs boosters {_STAGES[model.learner]}")
        return model


def _frame(X) -> pd.DataFrame:
    if not isinstance(X, pd.DataFrame):
        raise TypeError("X must be a DataFrame of named features (the model reads its columns by name)")
    return X


# -- evaluation on randomised rows (no truth needed) -----------------------------------------------------------------
def qini_curve(effect_pred, treated, outcome) -> pd.DataFrame:
    """Radcliffe's Qini curve: rows ordered by predicted effect, highest first (ties kept in their given order);
    after each row, ``qini = Y_T - Y_C * N_T / N_C`` with Y the arm's summed outcome and N its count among the rows
    targeted so far (Y_C's term 0 while no control row is targeted). Columns: ``targeted`` (rows so far),
    ``fraction`` (of all rows), ``qini`` and ``incremental`` (``qini * targeted / N_T``: the estimated pounds had every
    targeted row been contacted, 0 while no treated row is targeted). A first row at 0 is included."""
    order = np.argsort(-np.asarray(effect_pred, dtype=float), kind="stable")
    t = np.asarray(treated).astype(bool)[order]
    y = np.asarray(outcome, dtype=float)[order]
    n_t, n_c = np.cumsum(t), np.cumsum(~t)
    y_t, y_c = np.cumsum(np.where(t, y, 0.0)), np.cumsum(np.where(t, 0.0, y))
    qini = y_t - np.divide(y_c * n_t, n_c, out=np.zeros(len(y)), where=n_c > 0)
    targeted = np.arange(1, len(y) + 1)
    incremental = np.divide(qini * targeted, n_t, out=np.zeros(len(y)), where=n_t > 0)
    return pd.DataFrame({"targeted": np.r_[0, targeted], "fraction": np.r_[0, targeted] / max(len(y), 1),
                         "qini": np.r_[0.0, qini], "incremental": np.r_[0.0, incremental]})


def qini_coefficient(effect_pred, treated, outcome) -> float:
    """The area between the model's Qini curve and random targeting's (the straight line from 0 to the curve's end),
    over the fraction targeted (trapezoids on every row), divided by the number of treated rows: in pounds per
    treated tenancy, the extra the order finds over random, averaged over every depth of targeting. Random ≈ 0;
    negative: worse than random."""
    curve = qini_curve(effect_pred, treated, outcome)
    line = curve["fraction"] * curve["qini"].iloc[-1]
    gap = (curve["qini"] - line).to_numpy()
    area = float(np.sum((gap[1:] + gap[:-1]) / 2 * np.diff(curve["fraction"].to_numpy())))
    return area / max(int(np.asarray(treated).astype(bool).sum()), 1)


def auuc(effect_pred, treated, outcome) -> float:
    """Area under the uplift curve: the estimated incremental pounds per tenancy of the whole population
    (``incremental / rows``) averaged over the fraction targeted (trapezoids). Random's is about half the average
    effect; a good order's is higher."""
    curve = qini_curve(effect_pred, treated, outcome)
    per_row = (curve["incremental"] / max(len(curve) - 1, 1)).to_numpy()
    return float(np.sum((per_row[1:] + per_row[:-1]) / 2 * np.diff(curve["fraction"].to_numpy())))


def incremental_by_order(order_scores, treated, outcome, capacity: int | float) -> float:
    """The incremental pounds an order finds among its top `capacity` rows, estimated from the arms: (the treated
    rows' mean outcome - the control rows' mean) x the rows targeted. An int is a number of rows, a float in (0, 1)
    a share of them."""
    k = _rows(capacity, len(np.asarray(order_scores)))
    return float(qini_curve(order_scores, treated, outcome)["incremental"].iloc[k])


# -- evaluation against a simulator's truth --------------------------------------------------------------------------
def incremental_at_capacity(order_scores, true_gain, capacity: int | float) -> float:
    """The sum of the TRUE expected gains of the top `capacity` rows by `order_scores` (highest first; ties in the
    given order). With `true_gain` as its own score this is the uplift ceiling. An int is a number of rows, a float in
    (0, 1) a share of them."""
    scores = np.asarray(order_scores, dtype=float)
    gain = np.asarray(true_gain, dtype=float)
    if len(scores) != len(gain):
        raise ValueError(f"{len(scores)} scores for {len(gain)} gains")
    top = np.argsort(-scores, kind="stable")[:_rows(capacity, len(scores))]
    return float(gain[top].sum())


def share_of_ceiling(order_scores, true_gain, capacity: int | float) -> float:
    """`incremental_at_capacity` of the order over that of the ceiling (the top rows by the true gain itself)."""
    ceiling = incremental_at_capacity(true_gain, true_gain, capacity)
    return incremental_at_capacity(order_scores, true_gain, capacity) / ceiling if ceiling > 0 else float("nan")


def _rows(capacity: int | float, n: int) -> int:
    if isinstance(capacity, float) and not isinstance(capacity, bool):
        if not 0.0 < capacity < 1.0:
            raise ValueError(f"a share of rows must be strictly between 0 and 1, not {capacity}")
        return max(1, int(round(capacity * n)))
    if not 0 <= capacity <= n:
        raise ValueError(f"capacity {capacity} rows is outside 0..{n}")
    return int(capacity)


def holdout_metrics(model: ContactUplift, held_out: pd.DataFrame, capacity: float,
                    risk_order: str = "arrears_weeks") -> dict[str, float]:
    """What the gates judge, on held-out randomised rows (features, ``treated``, ``collected``): the Qini
    coefficient and AUUC of the model and of a random order (a fixed seed), and the incremental pounds at
    `capacity` (a share of the rows) found by the model, by the risk-like order (`risk_order` descending) and by
    random (the average effect x the rows)."""
    treated, collected = held_out["treated"].to_numpy(), held_out["collected"].to_numpy()
    effect = model.predict(held_out)
    random = np.random.default_rng(0).random(len(held_out))
    k = _rows(capacity, len(held_out))
    average = float(qini_curve(np.zeros(len(held_out)), treated, collected)["incremental"].iloc[-1]) / len(held_out)
    return {
        "qini_coefficient": qini_coefficient(effect, treated, collected),
        "qini_coefficient_random": qini_coefficient(random, treated, collected),
        "auuc": auuc(effect, treated, collected),
        "auuc_random": auuc(random, treated, collected),
        "incremental_at_capacity": incremental_by_order(effect, treated, collected, k),
        "incremental_at_capacity_risk_order": incremental_by_order(held_out[risk_order].to_numpy(), treated,
                                                                   collected, k),
        "incremental_at_capacity_random": average * k,
        "holdout_rows": float(len(held_out)),
        "holdout_treated_share": float(np.mean(treated)),
        "capacity_rows": float(k),
    }


# -- registration and loading (the one I/O here) ---------------------------------------------------------------------
MODEL_FILE = "uplift/contact_uplift.json"


@dataclass(frozen=True)
class UpliftChampion:
    """A registered uplift model ready to use: ``predict(frame)`` → the effect of a contact in pounds per row."""

    model: ContactUplift
    ref: registry.ModelRef

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.model.predict(frame)


def register_uplift(settings: TrainingSettings, model: ContactUplift, metrics: dict[str, float],
                    params: dict | None = None, tags: dict[str, str] | None = None) -> registry.ModelRef:
    """One MLflow run for a fitted uplift model: its parameters, finite metrics (`holdout_metrics`, plus any the
    caller measured against a simulator's truth), tags, and the model as text; registered as a new version of
    `registry.UPLIFT_MODEL` with the alias `challenger`. `training.promotion.promote` decides on `champion`."""
    import tempfile
    from pathlib import Path

    import mlflow

    name = registry.UPLIFT_MODEL
    client = registry.configure(settings)
    registry.tidy_interrupted(settings, name)
    with mlflow.start_run(run_name=name) as run:
        mlflow.set_tags({**registry.process_tags(), **(tags or {})})
        flat = {f"model.{k}": v for k, v in model.get_params().items() if k != "lightgbm"}
        flat.update({f"lightgbm.{k}": v for k, v in (model.lightgbm or LIGHTGBM_DEFAULTS).items()})
        flat.update({f"params.{k}": v for k, v in (params or {}).items() if not isinstance(v, dict)})
        mlflow.log_params(flat)
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if np.isfinite(v)})
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(MODEL_FILE).name
            path.write_text(model.to_json())
            mlflow.log_artifact(str(path), artifact_path=str(Path(MODEL_FILE).parent))
        try:
            client.get_registered_model(name)
        except mlflow.exceptions.MlflowException:
            client.create_registered_model(name)
        version = client.create_model_version(name, source=f"{run.info.artifact_uri}/{Path(MODEL_FILE).parent}",
                                              run_id=run.info.run_id,
                                              tags={"learner": model.learner, "model_file": MODEL_FILE})
        client.set_registered_model_alias(name, registry.CHALLENGER, version.version)
    return registry.model_by_alias(settings, name, registry.CHALLENGER)


def load_uplift(settings: TrainingSettings, alias: str = registry.CHAMPION) -> UpliftChampion:
    """The uplift model version with `alias` (`champion` by default), rebuilt from its text. Raises
    `registry.NoChampion` when no version has it."""
    import mlflow

    ref = registry.model_by_alias(settings, registry.UPLIFT_MODEL, alias)
    text = mlflow.artifacts.load_text(f"runs:/{ref.run_id}/{ref.tags.get('model_file', MODEL_FILE)}")
    return UpliftChampion(ContactUplift.from_json(text), ref)
