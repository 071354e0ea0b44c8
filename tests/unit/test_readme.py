"""The README is the front door: the commands it shows must exist."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from typer.testing import CliRunner

from arrears.cli import app

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_quick_start_is_exactly_two_make_targets_that_exist() -> None:
    block = README.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make demo", "make test"]
    for target in ("demo", "test"):
        dry = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True)
        assert dry.returncode == 0, dry.stderr


def test_ci_runs_the_readme_test_command() -> None:
    lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
             if line and not line.startswith(("#", "set ", "cd "))]
    assert lines == ["make test"]


def test_every_arrears_command_in_the_readme_exists() -> None:
    sub_verbs = "drift|status|build|apply|materialize|run|list"
    shown = set(re.findall(rf"(?:uv run |`)arrears ((?:[a-z]+)(?: (?:{sub_verbs}))?)", README))
    verbs = {(c.name or c.callback.__name__).replace("_", "-") for c in app.registered_commands}
    assert verbs | {"features", "monitor drift"} - {"main"} <= shown | {"main"}, verbs - shown
    runner = CliRunner()
    for command in shown:
        result = runner.invoke(app, [*command.split(), "--help"])
        assert result.exit_code == 0, (command, result.output)


def layout_files() -> set[str]:
    """The modules the README's layout names, each under the folder its entry stands in: a top-level entry
    (`serving/`) sets the package, a second-level one (`  runs/`) the folder below it until the next entry, and a
    path with a slash (`training/cash.py`) stands for itself."""
    tree = README.split("## Layout", 1)[1].split("```", 2)[1]
    named, package, folder = set(), "", ""
    for line in tree.splitlines():
        first = line.split()[0] if line.strip() else ""
        if first and not line.startswith(" "):
            package, folder = first.rstrip("/"), ""
        elif first and re.match(r"^  \S", line):
            folder = first.rstrip("/") if first.endswith("/") else ""
        for name in re.findall(r"(?<![\w.])([\w/]+\.py)\b", line):
            if not name.endswith("__init__.py"):  # "never an __init__.py": a warning, not a module
                named.add(name if "/" in name else "/".join(p for p in (package, folder, name) if p))
    return named


def test_layout_in_the_readme_matches_the_tree() -> None:
    tree = README.split("## Layout", 1)[1].split("```", 2)[1]
    for folder in re.findall(r"^([a-z.]+)/", tree, flags=re.M):
        assert (ROOT / folder).is_dir(), folder
    assert not (ROOT / "mlflow" / "__init__.py").exists()
    named = layout_files()
    assert sorted(name for name in named if not (ROOT / name).is_file()) == [], "named in the layout, not in the tree"
    packages = ("features", "simulator", "training", "casework", "relay", "serving", "monitoring", "arrears", "bench")
    tracked = subprocess.run(["git", "ls-files", *(f"{p}/*.py" for p in packages)], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    modules = {path for path in tracked if not path.endswith("__init__.py")}
    assert sorted(modules - named) == [], "modules the layout does not name"


def test_notebooks_are_valid_and_their_code_compiles() -> None:
    import json

    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks
    for path in notebooks:
        notebook = json.loads(path.read_text())
        for cell in notebook["cells"]:
            if cell["cell_type"] == "code":
                source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
                compile(source, f"{path.name}", "exec")


def test_notebooks_are_saved_without_outputs() -> None:
    """Outputs stay out of git, so a notebook's diff is its code and words (tests/e2e/test_notebooks.py runs them)."""
    import json

    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, path.name
