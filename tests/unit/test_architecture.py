"""The house rules, checked on the source: imports point one way, nothing imports the composition root or
monitoring, serving and monitoring never reach into a training run, and no two modules import each other in a
circle (not even through an import hidden inside a function)."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

from serving.access.declared import PAGE_ROOT, declared, is_public
from serving.api.service import ArrearsWorklist
from serving.web.app import ROUTES

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("features", "simulator", "training", "casework", "relay", "serving", "monitoring", "arrears")
#: What each package may import besides itself.
ALLOWED = {
    "features": set(),
    "simulator": {"features.feeds.contract"},
    "training": {"features"},
    "casework": {"features"},
    "relay": {"features", "casework"},
    "serving": {"features", "training", "casework", "relay"},
    "monitoring": {"features", "training", "casework", "relay", "serving"},
    "arrears": {"features", "simulator", "training", "casework", "relay", "serving", "monitoring"},
}
#: Training's run-time modules: serving and monitoring use the registry and the pure models, never these. A person's
#: decision on a waiting challenger (the models page) goes through `training.approval`, which runs the gates: light
#: (registry and parameters), and the one way the service reaches promotion.
TRAINING_RUNS = {"training.train", "training.dataset", "training.promotion"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports() -> dict[str, set[str]]:
    """Every project module → the project modules it imports, wherever the import statement is."""
    graph = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            found = set()
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    found |= {alias.name for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    found.add(node.module)
                    found |= {f"{node.module}.{alias.name}" for alias in node.names}
            graph[module_name(path)] = {name for name in found if name.split(".")[0] in PACKAGES}
    return {module: {name for name in names if name in graph} for module, names in graph.items()}


def test_imports_point_one_way() -> None:
    broken = []
    for module, names in project_imports().items():
        package = module.split(".")[0]
        for name in names:
            target = name.split(".")[0]
            allowed = target == package or any(name == rule or name.startswith(rule + ".")
                                               for rule in ALLOWED[package])
            if not allowed or (package in ("serving", "monitoring") and name in TRAINING_RUNS):
                broken.append(f"{module} imports {name}")
    assert not broken, "\n".join(sorted(broken))


def test_no_import_circle() -> None:
    graph = project_imports()
    seen, on_path, circles = set(), [], []

    def visit(module: str) -> None:
        if module in on_path:
            circles.append(" → ".join([*on_path[on_path.index(module):], module]))
            return
        if module in seen:
            return
        seen.add(module)
        on_path.append(module)
        for name in sorted(graph[module]):
            if name != module and not module.startswith(name + "."):  # a package's own __init__ is not a circle
                visit(name)
        on_path.pop()

    for module in sorted(graph):
        visit(module)
    assert not circles, "\n".join(circles)


#: serving's rooms and the rooms each may import (besides itself and serving.settings): one way, the pages below
#: the API that mounts them, the work below both.
ROOMS = {
    "access": set(),
    "income": {"access"},
    "treasury": {"income"},
    "runs": {"access", "income"},
    "privacy": {"access", "runs"},
    "web": {"access", "runs", "treasury", "privacy", "income"},
    "api": {"access", "runs", "treasury", "web", "privacy", "income"},
}


def test_serving_is_rooms_by_concern() -> None:
    loose = sorted(p.name for p in (ROOT / "serving").glob("*.py") if p.name not in ("__init__.py", "settings.py"))
    assert loose == [], f"serving/ modules outside a room: {loose}"
    rooms = sorted(p.name for p in (ROOT / "serving").iterdir() if (p / "__init__.py").exists())
    assert rooms == sorted(ROOMS)


def test_serving_rooms_import_one_way() -> None:
    broken = []
    for module, names in project_imports().items():
        parts = module.split(".")
        if parts[0] != "serving" or len(parts) < 3:
            continue
        for name in names:
            target = name.split(".")
            if target[0] == "serving" and len(target) > 1 and target[1] != parts[1] and target[1] != "settings" \
                    and target[1] not in ROOMS[parts[1]]:
                broken.append(f"{module} imports {name}")
    assert not broken, "\n".join(sorted(broken))


def test_every_endpoint_and_page_declares_its_roles() -> None:
    assert {"/" + name for name in ArrearsWorklist.apis} == set(declared("endpoint"))
    pages = {PAGE_ROOT + route.path for route in ROUTES if not route.path.startswith("/static")}
    assert {p for p in pages if not is_public(p)} == set(declared("page"))


def test_no_function_is_over_60_lines() -> None:
    """Outside the deliberately naive oracle that bench compares the feature build with."""
    exempt = {("bench/naive_features.py", "naive_snapshots")}
    long = []
    tracked = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True)
    for relative in tracked.stdout.split():
        for node in ast.walk(ast.parse((ROOT / relative).read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (relative, node.name) not in exempt \
                    and node.end_lineno - node.lineno + 1 > 60:
                long.append(f"{relative}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert not long, "\n".join(long)


def test_project_imports_stand_at_the_top() -> None:
    """What a module depends on is in its import lines. A project import inside a function is allowed only where a
    comment in the module says why (the CLI's start-up time; Feast rebuilding a function's source on its own)."""
    hidden = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            text = path.read_text()
            if "Lazy on purpose" in text or "Must stay inside" in text:
                continue
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    for inner in ast.walk(node):
                        if isinstance(inner, (ast.Import, ast.ImportFrom)) and any(
                                name.split(".")[0] in PACKAGES for name in _imported(inner)):
                            hidden.append(f"{path.relative_to(ROOT)}:{inner.lineno} in {node.name}")
    assert not hidden, "\n".join(hidden)


def _imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.ImportFrom):
        return [node.module] if node.module and node.level == 0 else []
    return [alias.name for alias in node.names]


#: Who may import the protected characteristics' store (`features.protected`): ingestion writes it, the bias gate
#: and the bias and drift jobs read it through its one reader, and in serving only the privacy room (admins' subject
#: access export and erasure), never through the reader.
PROTECTED_READERS = {"training.dataset", "monitoring.jobs"}
PROTECTED_IMPORTERS = {"features.feeds.ingest", "serving.privacy.holdings", *PROTECTED_READERS}


def test_protected_characteristics_stay_out_of_serving_and_the_features() -> None:
    """No serving module and no feature definition (features/repo, the catalogue) imports the protected store's
    reader or names a protected characteristic (a column name, or the contract's list of them)."""
    from features.feeds.contract import MONITORING_ONLY_COLUMNS

    names = {*MONITORING_ONLY_COLUMNS, "MONITORING_ONLY_COLUMNS"}
    broken, readers = [], set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            module = module_name(path)
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, (ast.Import, ast.ImportFrom)) and any(
                        n == "features.protected" for n in _imported(node)):
                    if module not in PROTECTED_IMPORTERS:
                        broken.append(f"{module} imports features.protected")
                    if isinstance(node, ast.ImportFrom) and "monitoring_attributes" in {a.name for a in node.names}:
                        readers.add(module)
            if module.startswith(("serving.", "features.repo.")) or module == "features.catalogue":
                for node in ast.walk(tree):
                    named = (node.value if isinstance(node, ast.Constant) else node.id if isinstance(node, ast.Name)
                             else node.attr if isinstance(node, ast.Attribute)
                             else node.name.split(".")[-1] if isinstance(node, ast.alias) else None)
                    if named in names:
                        broken.append(f"{module}:{node.lineno if hasattr(node, 'lineno') else ''} names {named}")
    assert not broken, "\n".join(sorted(broken))
    assert readers == PROTECTED_READERS
