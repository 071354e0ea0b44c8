"""Settings in layers with one ARREARS_ prefix: each package reads its own and extends the one below."""

from __future__ import annotations

from pathlib import Path

import pytest

from features.settings import FeatureSettings, load_settings
from serving.settings import ServingSettings
from serving.settings import get_settings as serving_settings
from training.settings import TrainingSettings


def test_each_layer_extends_the_one_below(home: Path) -> None:
    assert issubclass(ServingSettings, TrainingSettings) and issubclass(TrainingSettings, FeatureSettings)
    settings = serving_settings()
    assert settings.home == home.resolve()
    assert settings.ledger == f"duckdb:///{home.resolve() / 'ledger.duckdb'}"
    assert settings.tracking_uri.startswith("sqlite:///") and settings.reports_dir == home.resolve() / "reports"
    assert load_settings(ServingSettings) is settings  # read once per layer


def test_a_child_process_gets_every_layers_settings(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARREARS_MLFLOW_TRACKING_URI", "http://tracking:5000")
    monkeypatch.setenv("ARREARS_PARTITION_TENANCIES", "500")
    load_settings.cache_clear()
    env = serving_settings().child_env()
    assert env["ARREARS_HOME"] == str(home.resolve())
    assert env["ARREARS_MLFLOW_TRACKING_URI"] == "http://tracking:5000"  # training's layer
    assert env["ARREARS_PARTITION_TENANCIES"] == "500"  # the feature layer's
    assert "ARREARS_LEDGER_URL" not in env  # unset stays unset: the child derives the same default
    assert TrainingSettings(**{k.removeprefix("ARREARS_").lower(): v for k, v in env.items()}).tracking_uri == \
        "http://tracking:5000"


def test_a_child_process_reads_back_a_list_setting_as_the_parent_had_it(home: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARREARS_TRUSTED_PROXIES", '["10.0.0.1", "10.0.0.2"]')
    load_settings.cache_clear()
    env = serving_settings().child_env()
    for name, value in env.items():  # the child reads its environment exactly as the parent did
        monkeypatch.setenv(name, value)
    load_settings.cache_clear()
    assert serving_settings().trusted_proxies == ["10.0.0.1", "10.0.0.2"]


def test_production_feast_variables_come_from_the_urls(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARREARS_FEAST_PROFILE", "production")
    monkeypatch.setenv("ARREARS_FEAST_POSTGRES_URL",
                       "postgresql://arrears:s3cret@db:6543/ledger?options=-csearch_path%3Dportfolio_a")
    monkeypatch.setenv("ARREARS_REDIS_URL", "redis://:r3dis@cache:6380/2")
    load_settings.cache_clear()
    variables = FeatureSettings().feast_variables()
    assert (variables["ARREARS_FEAST_PG_HOST"], variables["ARREARS_FEAST_PG_PORT"]) == ("db", "6543")
    assert variables["ARREARS_FEAST_PG_SCHEMA"] == "portfolio_a" and variables["ARREARS_FEAST_PG_PASSWORD"] == "s3cret"
    assert variables["ARREARS_FEAST_REDIS"] == "cache:6380,db=2,password=r3dis"
    assert variables["ARREARS_FEAST_OFFLINE"] == "postgres"


def test_the_production_profile_without_postgres_says_what_to_set(home: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARREARS_FEAST_PROFILE", "production")
    load_settings.cache_clear()
    with pytest.raises(ValueError, match="ARREARS_FEAST_POSTGRES_URL"):
        FeatureSettings().feast_variables()


def test_the_case_store_is_its_own_sqlite_file_or_the_ledgers_postgres_in_the_casework_schema(tmp_path) -> None:
    from casework.settings import CaseworkSettings, schema_of

    embedded = CaseworkSettings(home=tmp_path)
    assert embedded.casework_database == f"sqlite:///{tmp_path.resolve() / 'casework.sqlite'}"
    production = CaseworkSettings(home=tmp_path, ledger_url="postgresql://arrears@db:5432/arrears?sslmode=require")
    assert production.casework_database.startswith("postgresql://arrears@db:5432/arrears?sslmode=require&options=")
    assert schema_of(production.casework_database) == "casework"
    assert CaseworkSettings(home=tmp_path, casework_url="sqlite:///x.db").casework_database == "sqlite:///x.db"
