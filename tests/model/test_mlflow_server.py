"""The MLflow tracking-server profile: a real `mlflow server` with its backend store on the PostgreSQL server of this
machine (a schema of its own) and proxied artefacts; training, promotion and loading the champion go through it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path

import pytest

from serving.settings import get_settings
from tests.support.homes import isolated_home
from tests.support.portfolios import featurised_portfolio
from tests.support.postgres import POSTGRES_ADMIN_URL, create_schema, drop_schema

pytestmark = pytest.mark.postgres


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def tracking_server(tmp_path):
    url, schema = create_schema()
    backend = "postgresql+psycopg://" + url.split("://", 1)[1]
    port = _free_port()
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    server = subprocess.Popen(
        [str(mlflow_cli), "server", "--backend-store-uri", backend, "--artifacts-destination",
         str(tmp_path / "artifacts"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    address = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{address}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start on {address} (exit code {server.poll()})")
            time.sleep(0.5)
        yield address, schema
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        drop_schema(schema)


def test_train_promote_and_load_through_a_postgres_backed_tracking_server(tracking_server, tmp_path):
    from training import registry
    from training.promotion import promote
    from training.train import train_risk_model

    address, schema = tracking_server
    with isolated_home(tmp_path / "home", ARREARS_MLFLOW_TRACKING_URI=address):
        settings = get_settings()
        featurised_portfolio(settings, tmp_path, n_tenancies=600, seed=4)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trained = train_risk_model(settings)
            decision = promote(settings, registry.RISK_MODEL)
            champion = registry.load_champion(settings, registry.RISK_MODEL)
            booster, ref = champion.booster, champion.ref
    assert decision.promoted, decision.failed_gates
    assert ref.version == trained.version and booster.num_trees() > 0
    assert not (settings.home / "mlflow").exists()  # nothing went to the embedded store
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as con:
        aliases = con.execute(f"SELECT name, alias FROM {schema}.registered_model_aliases").fetchall()
        promotions = con.execute(f"SELECT COUNT(*) FROM {schema}.runs r JOIN {schema}.experiments e "
                                 "ON r.experiment_id = e.experiment_id WHERE e.name = %s",
                                 [registry.PROMOTIONS]).fetchone()[0]
    assert (registry.RISK_MODEL, registry.CHAMPION) in aliases and (registry.RISK_MODEL, registry.CHALLENGER) in aliases
    assert promotions == 1
