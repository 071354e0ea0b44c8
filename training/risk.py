"""The arrears-risk model, pure: a LightGBM classifier on the `arrears_risk_v1` features, its calibration and its
scores. No I/O here: `training.train` builds the data, logs and registers; `training.promotion` gates.
"""

from __future__ import annotations

import lightgbm as lgb
import pandas as pd

from training.calibration import Calibration

#: A training row's weight, when it has one (`training.treatment`: rows standing for the contacted count more).
WEIGHT = "training_weight"


def _weight(frame: pd.DataFrame):
    return frame[WEIGHT].to_numpy(dtype=float) if WEIGHT in frame else None


def fit_booster(train: pd.DataFrame, valid: pd.DataFrame, names: list[str], lgb_params: dict) -> lgb.Booster:
    """LightGBM on `names` → `label`, stopping early on the validation rows; rows weighted by a `training_weight`
    column when the frames have one."""
    params = dict(lgb_params)
    rounds = params.pop("num_boost_round")
    stopping = params.pop("early_stopping_rounds")
    dtrain = lgb.Dataset(train[names], label=train["label"], weight=_weight(train), feature_name=names,
                         free_raw_data=False)
    dvalid = lgb.Dataset(valid[names], label=valid["label"], weight=_weight(valid), reference=dtrain)
    return lgb.train(params, dtrain, num_boost_round=rounds, valid_sets=[dvalid],
                     callbacks=[lgb.early_stopping(stopping, verbose=False)])


def score(booster: lgb.Booster, frame: pd.DataFrame, names: list[str], calibration: Calibration) -> pd.DataFrame:
    """Raw score (ranks the list) and calibrated probability (what an officer reads) for each row."""
    raw = booster.predict(frame[names].to_numpy(dtype=float), raw_score=True,
                          num_iteration=booster.best_iteration if booster.best_iteration > 0 else None)
    return pd.DataFrame({"risk_raw": raw, "risk_score": calibration(raw)}, index=frame.index)


def fit_and_calibrate(train: pd.DataFrame, valid: pd.DataFrame, names: list[str],
                      lgb_params: dict) -> tuple[lgb.Booster, Calibration]:
    """Fit on the training rows, then calibrate the raw score on the validation rows (weighted as they were)."""
    booster = fit_booster(train, valid, names, lgb_params)
    valid_raw = score(booster, valid, names, Calibration())["risk_raw"]
    return booster, Calibration.fit(valid_raw.to_numpy(), valid["label"].to_numpy(), _weight(valid))
