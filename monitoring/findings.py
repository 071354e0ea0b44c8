"""What a monitoring job found and when a finding becomes an alert: a job's `JobResult` (its outputs and its
`Breach`es) and the schedule's `Thresholds`. Kept apart from `monitoring.jobs`, which imports the models' whole
stack, so the scheduler (`arrears.schedule`) and its quick verbs read the schedule without loading it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Thresholds:
    """When a finding becomes an alert (the schedule file's `alerts:` section; docs/monitoring.md explains each)."""

    drift_share: float = 0.3  #: share of the model's features drifted, like with like
    score_psi: float = 0.2  #: PSI of the risk score, like with like
    bias_flags: int = 1  #: flagged group findings (each clears its own confidence bound)
    auc_drop: float = 0.05  #: matured AUC below the version's test AUC by more than this, beyond 1.96 SE
    precision_drop: float = 0.10  #: matured precision at top-k below what the calibrated probabilities expected
    #: Drift is also judged within each group of these register columns (a change that hits one group, such as a
    #: benefit paid late, is diluted in the whole portfolio); a group alerts when both its drifted share and its
    #: score PSI pass the thresholds above; only groups of at least `segment_min_rows` live tenancies are judged
    #: (a smaller group is listed with its size: its noise would raise false alarms).
    drift_segments: tuple[str, ...] = ("benefit_type", "payment_method", "patch")
    segment_min_rows: float = 200


@dataclass(frozen=True)
class Breach:
    kind: str
    message: str
    value: float | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class JobResult:
    outputs: dict
    breaches: list[Breach] = field(default_factory=list)
