"""Per-model parameters: versioned YAML files in `training/params/`, read on use (never at import time)."""

from __future__ import annotations

from pathlib import Path

import yaml

PARAMS_DIR = Path(__file__).resolve().parent / "params"


def load_params(model: str) -> dict:
    """The parameters of `model` (`arrears_risk`, `payment_date`): label, sampling, gates, LightGBM settings."""
    return yaml.safe_load((PARAMS_DIR / f"{model}.yaml").read_text())
