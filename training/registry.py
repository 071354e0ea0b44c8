"""MLflow tracking and registry: where runs are logged, how versions are found, and every loader of what training
left behind (the champion models, the reference sample drift is measured against).

MLflow 3 uses aliases, not stages: a new version is `challenger`; `champion` is what serving loads. Serving and
monitoring import this module, never a model's training code.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pandas as pd

from training.calibration import Calibration
from training.settings import TrainingSettings

# mlflow is imported inside the functions that use it: it takes 5-6 s to import, and every command and the service
# import this module (for NoChampion, the model names, the loaders), most of them never reaching MLflow.

RISK_MODEL = "arrears_risk"
PAYMENT_MODEL = "payment_date"
#: The contact-uplift model (`training.uplift`: its fitting, registration and loader).
UPLIFT_MODEL = "contact_uplift"
EXPERIMENT = "arrears"
PROMOTIONS = "promotions"
CHAMPION = "champion"
CHALLENGER = "challenger"


def experiment(settings: TrainingSettings, name: str) -> str:
    """The id of experiment `name`, created on first use (artefacts under home with the local store)."""
    import mlflow

    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None if settings.mlflow_tracking_uri else settings.mlflow_artifacts_dir.as_uri()
    return mlflow.create_experiment(name, artifact_location=location)


def configure(settings: TrainingSettings):
    """Point the MLflow client at this home's tracking store (creating the local store on first use)."""
    import mlflow

    if settings.mlflow_tracking_uri is None:
        settings.mlflow_artifacts_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    mlflow.set_experiment(experiment_id=experiment(settings, EXPERIMENT))
    return mlflow.MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def model_requirements() -> list[str]:
    """What a logged model needs to load, pinned to the versions it was trained with. Stated, not inferred: MLflow's
    inference re-resolves the whole environment on every run (seconds) and may capture more than the model uses."""
    return [f"{package}=={metadata.version(package)}"
            for package in ("mlflow", "lightgbm", "numpy", "pandas", "scikit-learn")]


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str
    run_id: str
    feature_service: str
    tags: dict[str, str]


class NoChampion(LookupError):
    pass


#: Tags on a training run naming the process that made it, so a later run can tell an interrupted run (its process
#: gone) from one still training elsewhere.
HOST_TAG, PID_TAG = "arrears.host", "arrears.pid"


def process_tags() -> dict[str, str]:
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def _interrupted(run) -> bool:
    """A run that will never finish: failed or killed, or RUNNING although its process on this host is gone."""
    if run.info.status in ("FAILED", "KILLED"):
        return True
    if run.info.status != "RUNNING" or run.data.tags.get(HOST_TAG) != socket.gethostname():
        return False
    pid = int(run.data.tags.get(PID_TAG, "0")) if run.data.tags.get(PID_TAG, "").isdigit() else 0
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)  # signal 0: is the process there?
    except ProcessLookupError:
        return True
    except PermissionError:  # there, under another user
        return False
    return False


def tidy_interrupted(settings: TrainingSettings, name: str) -> list[str]:
    """Before registering a new version of `name`: delete the versions a killed training left (its run will never
    finish; never the champion), and mark their runs KILLED, so a training run again after a crash leaves one
    version, as an uninterrupted one does. Returns the deleted versions."""
    from mlflow.exceptions import MlflowException

    client = configure(settings)
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return []
    deleted = []
    for version in versions:
        run = client.get_run(version.run_id)
        if CHAMPION in (version.aliases or []) or not _interrupted(run):
            continue
        if run.info.status == "RUNNING":
            client.set_terminated(run.info.run_id, "KILLED")
        client.delete_model_version(name, version.version)
        deleted.append(str(version.version))
    return deleted


def model_by_alias(settings: TrainingSettings, name: str, alias: str) -> ModelRef:
    from mlflow.exceptions import MlflowException

    client = configure(settings)
    try:
        mv = client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        raise NoChampion(
            f"No version of {name} has the alias {alias!r}: run `arrears train` then `arrears promote` (or "
            "`arrears demo` for the whole job on a simulated portfolio)."
        ) from exc
    return ModelRef(name, str(mv.version), mv.run_id, mv.tags.get("feature_service", ""), dict(mv.tags))


@dataclass(frozen=True)
class Champion:
    """A model version ready to use: its LightGBM booster, its registry entry and (risk model) its calibration."""

    booster: object
    ref: ModelRef
    calibration: Calibration


def load_version(settings: TrainingSettings, ref: ModelRef) -> Champion:
    """The model version `ref` names, loaded by version (so it matches `ref` even if an alias moves meanwhile)."""
    import mlflow

    configure(settings)
    booster = mlflow.lightgbm.load_model(f"models:/{ref.name}/{ref.version}")
    return Champion(booster, ref, Calibration.from_tags(ref.tags))


def load_champion(settings: TrainingSettings, name: str, alias: str = CHAMPION) -> Champion:
    """The version of `name` that has `alias`."""
    return load_version(settings, model_by_alias(settings, name, alias))


# -- the reference sample: what drift is measured against --------------------------------------------------------
def reference_path(settings: TrainingSettings, version: str, name: str = RISK_MODEL) -> Path:
    return settings.reference_dir / f"{name}_v{version}.parquet"


def save_reference(settings: TrainingSettings, train_features: pd.DataFrame, version: str,
                   rows: int = 20_000) -> Path:
    """The feature distribution a risk-model version learnt from (a fixed-seed sample of its training rows)."""
    sample = train_features.sample(n=min(rows, len(train_features)), random_state=0)
    path = reference_path(settings, version)
    path.parent.mkdir(parents=True, exist_ok=True)
    sample.to_parquet(path, index=False)
    return path


def load_reference(settings: TrainingSettings, version: str) -> pd.DataFrame:
    return pd.read_parquet(reference_path(settings, version))
