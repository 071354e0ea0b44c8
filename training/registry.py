"""MLflow tracking and registry: where runs are logged, models registered, and aliases moved.

MLflow 3 uses aliases, not stages: a new version is `challenger`; `champion` is what serving loads.
"""

from __future__ import annotations

from dataclasses import dataclass

from training.settings import TrainingSettings

RISK_MODEL = "arrears_risk"
PAYMENT_MODEL = "payment_date"
EXPERIMENT = "arrears"
PROMOTIONS = "promotions"
CHAMPION = "champion"
CHALLENGER = "challenger"


def configure(settings: TrainingSettings):
    """Point the MLflow client at this home's tracking store (creating the local store on first use)."""
    import mlflow

    if settings.mlflow_tracking_uri is None:
        (settings.home / "mlflow").mkdir(parents=True, exist_ok=True)
        settings.mlflow_artifacts_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        artifact_location = None if settings.mlflow_tracking_uri else settings.mlflow_artifacts_dir.as_uri()
        mlflow.create_experiment(EXPERIMENT, artifact_location=artifact_location)
    mlflow.set_experiment(EXPERIMENT)
    return mlflow.MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def model_requirements() -> list[str]:
    """What a logged model needs to load, pinned to the versions it was trained with. Stated, not inferred: MLflow's
    inference re-resolves the whole environment on every run (seconds) and may capture more than the model uses."""
    from importlib.metadata import version

    return [f"{package}=={version(package)}" for package in ("mlflow", "lightgbm", "numpy", "pandas", "scikit-learn")]


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str
    run_id: str
    feature_service: str
    tags: dict[str, str]


class NoChampion(LookupError):
    pass


def model_by_alias(settings: TrainingSettings, name: str, alias: str) -> ModelRef:
    from mlflow.exceptions import MlflowException

    client = configure(settings)
    try:
        mv = client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        raise NoChampion(
            f"No version of {name} has the alias {alias!r}: run `arrears train` then `arrears promote`."
        ) from exc
    return ModelRef(name, str(mv.version), mv.run_id, mv.tags.get("feature_service", ""), dict(mv.tags))


def record_promotion(settings: TrainingSettings, model: str, version: str, previous: str | None, promoted: bool,
                     failed: list[str]) -> str:
    """Every promotion decision becomes a run of its own in the `promotions` experiment (who, what, why)."""
    import getpass

    import mlflow

    configure(settings)
    if mlflow.get_experiment_by_name(PROMOTIONS) is None:
        location = None if settings.mlflow_tracking_uri else settings.mlflow_artifacts_dir.as_uri()
        mlflow.create_experiment(PROMOTIONS, artifact_location=location)
    experiment = mlflow.get_experiment_by_name(PROMOTIONS)
    with mlflow.start_run(experiment_id=experiment.experiment_id, run_name=f"{model} v{version}") as run:
        mlflow.set_tags({"model": model, "version": version, "previous_champion": previous or "",
                         "decision": "promoted" if promoted else "refused", "decided_by": getpass.getuser(),
                         "failed_gates": "; ".join(failed)})
    return run.info.run_id
