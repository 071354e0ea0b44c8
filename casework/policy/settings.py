"""The policy's parameters: versioned YAML beside the rules (`params.yaml`), read on use."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

PARAMS = Path(__file__).resolve().parent / "params.yaml"


@dataclass(frozen=True)
class Policy:
    """One version of the readiness policy: each section of params.yaml as a dict."""

    version: str
    breathing_space: dict
    recent_payment: dict
    payment_plan: dict
    contact_limit: dict
    ambiguous_balance: dict
    protocol: dict

    @property
    def lookback_days(self) -> int:
        """How far back the facts must reach for every rule."""
        return max(self.recent_payment["window_days"], self.payment_plan["silent_days"],
                   self.ambiguous_balance["receipt_lookback_days"], self.contact_limit["days"])


def read_policy(path: Path) -> Policy:
    """The parameters at `path`; the version stamped on rows is the file's `version` plus a digest of the file and
    of the rules' code, so a change to either is a new version even if nobody remembers to bump the number."""
    params = yaml.safe_load(path.read_text())
    digest = hashlib.sha256(path.read_bytes())
    for source in sorted(Path(__file__).resolve().parent.glob("*.py")):
        digest.update(source.read_bytes())
    return Policy(**{**params, "version": f"{params['version']}+{digest.hexdigest()[:8]}"})


@cache
def load_policy() -> Policy:
    """The policy shipped with the code."""
    return read_policy(PARAMS)
