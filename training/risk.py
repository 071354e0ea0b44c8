"""The arrears-risk model, pure: a LightGBM classifier on the `arrears_risk_v1` features, its calibration and its
scores. No I/O here: `training.train` builds the data, logs and registers; `training.promotion` gates.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd


def fit_booster(train: pd.DataFrame, valid: pd.DataFrame, names: list[str], lgb_params: dict) -> lgb.Booster:
    """LightGBM on `names` → `label`, stopping early on the validation rows."""
    params = dict(lgb_params)
    rounds = params.pop("num_boost_round")
    stopping = params.pop("early_stopping_rounds")
    dtrain = lgb.Dataset(train[names], label=train["label"], feature_name=names, free_raw_data=False)
    dvalid = lgb.Dataset(valid[names], label=valid["label"], reference=dtrain)
    return lgb.train(params, dtrain, num_boost_round=rounds, valid_sets=[dvalid],
                     callbacks=[lgb.early_stopping(stopping, verbose=False)])


@dataclass(frozen=True)
class Calibration:
    """Platt scaling of the raw score: probability = 1 / (1 + exp(-(slope * raw + intercept))).

    Fitted on the validation weeks (never the test weeks). Strictly increasing, so it changes no ranking and the
    SHAP reasons (which explain the raw score) stay exact.
    """

    slope: float = 1.0
    intercept: float = 0.0

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.slope * np.asarray(raw, dtype=float) + self.intercept)))

    @classmethod
    def fit(cls, raw: np.ndarray, label: np.ndarray) -> Calibration:
        from sklearn.linear_model import LogisticRegression

        if len(np.unique(label)) < 2:
            return cls()
        model = LogisticRegression(C=1e6).fit(np.asarray(raw, dtype=float).reshape(-1, 1), label)
        return cls(float(model.coef_[0, 0]), float(model.intercept_[0]))

    def tags(self) -> dict[str, str]:
        return {"calibration_slope": repr(self.slope), "calibration_intercept": repr(self.intercept)}

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> Calibration:
        return cls(float(tags.get("calibration_slope", 1.0)), float(tags.get("calibration_intercept", 0.0)))


def score(booster: lgb.Booster, frame: pd.DataFrame, names: list[str], calibration: Calibration) -> pd.DataFrame:
    """Raw score (ranks the list) and calibrated probability (what an officer reads) for each row."""
    raw = booster.predict(frame[names].to_numpy(dtype=float), raw_score=True,
                          num_iteration=booster.best_iteration if booster.best_iteration > 0 else None)
    return pd.DataFrame({"risk_raw": raw, "risk_score": calibration(raw)}, index=frame.index)


def fit_and_calibrate(train: pd.DataFrame, valid: pd.DataFrame, names: list[str],
                      lgb_params: dict) -> tuple[lgb.Booster, Calibration]:
    """Fit on the training rows, then calibrate the raw score on the validation rows."""
    booster = fit_booster(train, valid, names, lgb_params)
    valid_raw = score(booster, valid, names, Calibration())["risk_raw"]
    return booster, Calibration.fit(valid_raw.to_numpy(), valid["label"].to_numpy())
