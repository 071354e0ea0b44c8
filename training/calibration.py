"""The risk score's calibration: what a registered risk model carries beside its booster (as MLflow tags). Its own
module so that `training.registry`, which every command and the service import, needs neither the risk model's
training code nor LightGBM and scikit-learn: while the registry took it from `training.risk`, `arrears --help` loaded
1,797 modules in 11.0 s; without, 931 in 5.7 s (median of 5 on 2 shared cores).

scikit-learn is imported inside `Calibration.fit`, for the same reason: only training fits a calibration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
    def fit(cls, raw: np.ndarray, label: np.ndarray, weight: np.ndarray | None = None) -> Calibration:
        """Fitted by logistic regression of the label on the raw score (rows weighted when `weight` is given)."""
        from sklearn.linear_model import LogisticRegression  # see the module's docstring: only training fits

        if len(np.unique(label)) < 2:
            return cls()
        model = LogisticRegression(C=1e6).fit(np.asarray(raw, dtype=float).reshape(-1, 1), label,
                                              sample_weight=weight)
        return cls(float(model.coef_[0, 0]), float(model.intercept_[0]))

    def tags(self) -> dict[str, str]:
        return {"calibration_slope": repr(self.slope), "calibration_intercept": repr(self.intercept)}

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> Calibration:
        return cls(float(tags.get("calibration_slope", 1.0)), float(tags.get("calibration_intercept", 0.0)))
