"""Every notebook under notebooks/ runs top to bottom, as a data scientist runs it: a fresh `python3` kernel of this
environment, started in the notebooks folder, with ARREARS_HOME pointing at a home built here (a small simulated
portfolio through ingest, features, train, promote and a recorded worklist run, as `make demo` leaves one).
A cell that raises fails the test; then what the notebooks showed is checked against the home they worked on.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

from serving.settings import get_settings
from tests.support.homes import isolated_home
from tests.support.portfolios import featurised_portfolio

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
DECISION = re.compile(r"^decision: (promoted|refused): arrears_risk version (\d+)", re.M)


@dataclass
class Executed:
    notebook: object  #: the notebook with its outputs (never written back to notebooks/)
    error: Exception | None


def python3_kernel(folder: Path, home: Path):
    """The kernel specs the notebooks run with: only `python3`, the interpreter running the tests (whatever other
    kernels this machine has installed), with ARREARS_HOME set for it."""
    from ipykernel.kernelspec import write_kernel_spec
    from jupyter_client.kernelspec import KernelSpecManager

    write_kernel_spec(folder / "python3", overrides={"env": {"ARREARS_HOME": str(home)}})
    return KernelSpecManager(kernel_dirs=[str(folder)])


def execute(path: Path, specs) -> Executed:
    """Run a notebook top to bottom in a fresh kernel started in its folder; stop at the first cell error."""
    import nbformat
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, km=KernelManager(kernel_name="python3", kernel_spec_manager=specs),
                            timeout=300, resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    except CellExecutionError as exc:
        return Executed(notebook, exc)
    return Executed(notebook, None)


def cell_text(cell) -> str:
    """What a cell printed or showed as text."""
    parts = []
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream" and output["name"] == "stdout":
            parts.append(output["text"])
        elif output["output_type"] in ("execute_result", "display_data"):
            parts.append(output["data"].get("text/plain", ""))
    return "\n".join(parts)


def output_text(notebook) -> str:
    return "\n".join(cell_text(cell) for cell in notebook.cells)


def images(cell) -> int:
    return sum("image/png" in output.get("data", {}) for output in cell.get("outputs", []))


def code_cell(notebook, fragment: str):
    return next(cell for cell in notebook.cells if cell.cell_type == "code" and fragment in cell.source)


@pytest.fixture(scope="module")
def ran(tmp_path_factory) -> dict:
    """A small portfolio with a champion and a recorded worklist run, then every notebook run on it in name order
    (the walkthrough before the retraining notebook that changes the champion)."""
    from serving.runs.record import record_run
    from serving.runs.worklist import Worklister
    from training.promotion import promote
    from training.registry import RISK_MODEL
    from training.train import train_risk_model

    root = tmp_path_factory.mktemp("notebooks")
    home = root / "home"
    with isolated_home(home) as env:
        env.delenv("ARREARS_OUTCOMES", raising=False)  # the retraining notebook builds its example outcomes
        env.delenv("MPLBACKEND", raising=False)  # the kernel's own inline backend draws the plots
        settings = get_settings()
        featurised_portfolio(settings, root, n_tenancies=500, seed=3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            first = train_risk_model(settings)
            decision = promote(settings, RISK_MODEL)
        assert decision.promoted, decision.failed_gates
        record_run(settings)
        top = Worklister(settings).worklist(top=1).rows[0].tenancy_id
        specs = python3_kernel(root / "kernels", home)
        executed = {path.name: execute(path, specs) for path in sorted(NOTEBOOKS.glob("*.ipynb"))}
        yield {"settings": settings, "home": home, "first": first, "top": top, "executed": executed}


def succeeded(ran: dict, name: str):
    executed = ran["executed"][name]
    if executed.error is not None:
        pytest.fail(f"{name} stopped at a cell error:\n{executed.error}")
    return executed.notebook


def test_every_notebook_runs_top_to_bottom_on_the_home_arrears_home_names(ran) -> None:
    assert set(ran["executed"]) >= {"01_walkthrough.ipynb", "02_retraining.ipynb"}
    errors = {name: str(run.error) for name, run in ran["executed"].items() if run.error is not None}
    assert not errors, "\n\n".join(f"{name}:\n{error}" for name, error in errors.items())
    for name, run in ran["executed"].items():
        assert str(ran["settings"].home) in output_text(run.notebook), f"{name} did not work on ARREARS_HOME"


def test_the_walkthrough_shows_the_recorded_worklist_and_the_shap_summary(ran) -> None:
    notebook = succeeded(ran, "01_walkthrough.ipynb")
    assert ran["top"] in cell_text(code_cell(notebook, "worklister.worklist(")), ran["top"]
    assert images(code_cell(notebook, "shap.summary_plot")) == 1


def test_the_retraining_notebook_trains_on_outcomes_and_its_decision_is_the_registrys(ran) -> None:
    import mlflow
    from serving.runs.store import open_runs
    from training.labels import read_outcomes

    notebook = succeeded(ran, "02_retraining.ipynb")
    text = output_text(notebook)
    found = DECISION.findall(text)
    assert len(found) == 1, text
    verdict, version = found[0]
    assert int(version) == int(ran["first"].version) + 1

    settings = ran["settings"]
    client = mlflow.MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    registered = client.get_model_version("arrears_risk", version)
    run = client.get_run(registered.run_id)
    assert run.data.tags["label_source"] == "outcomes_file"
    assert run.data.tags["split"] == "time"  # the example outcomes span many dates
    assert "champion_auc_same_window" in run.data.metrics  # compared with the champion on the same rows
    outcomes = read_outcomes(ran["home"] / "outcomes" / "example_outcomes.csv")
    assert outcomes["as_of_date"].nunique() >= 3 and set(outcomes["outcome"]) == {0, 1}

    champion = client.get_model_version_by_alias("arrears_risk", "champion").version
    failing = re.findall(r"^failing gate: (.+)$", text, flags=re.M)
    version, champion = str(version), str(champion)
    if verdict == "promoted":
        assert champion == version and registered.tags["promotion"] == "promoted" and not failing
    else:
        assert champion == str(ran["first"].version) and failing
        assert registered.tags["promotion"] == "refused: " + "; ".join(failing)
    with open_runs(settings) as runs:
        assert str(runs.latest()["model_version"]) == champion  # the served list follows the champion

    assert images(code_cell(notebook, "download_artifacts")) == 3  # ROC, lift and calibration, as logged
