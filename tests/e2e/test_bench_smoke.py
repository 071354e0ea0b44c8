"""Every benchmark, run at a tiny size the way bench/README.md runs it: `python -m bench --suite X` for each suite
`bench/__main__.py` knows, and the separate entries `python -m bench.ceiling`, `bench.monitoring`,
`bench.cash_backtest`, `bench.experiments`, `bench.cash_application` and `bench.coverage_noise`. Each must exit 0
and print its table with the rows bench/README.md names, through the real code (simulator, ledger, Feast, MLflow,
`bentoml serve`, chromium, wrk): nothing is mocked.
Speed is not asserted (a shared machine's timings vary); this only keeps the benchmarks from rotting.

The seven heaviest (features, worklist, throughput, ceiling, monitoring, cash backtest, experiments: each trains
real models or starts `bentoml serve`, 2.5 to 6.5 minutes apiece on 2 cores, about 30 minutes in all) run with
`ARREARS_BENCH_SMOKE=all`, as `make bench-smoke` runs them; `make test` runs the three that take seconds to a minute
(pipeline, models, ingest), so the suite stays well under 15 minutes.

Each run is a real process in a throwaway home with its temporary files under this module's folder; a server a
suite starts must be gone when it exits (checked after every run, and stopped if not).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import SUITES
from tests.support.homes import isolated_home

ROOT = Path(__file__).resolve().parents[2]
#: Below pytest's own timeout (pyproject.toml), so a stuck run is stopped here, with its output.
TIMEOUT = 840
#: The heavy smokes, only when asked for (`make bench-smoke`).
heavy = pytest.mark.skipif(os.environ.get("ARREARS_BENCH_SMOKE") != "all",
                           reason="a heavy bench smoke: run it with `make bench-smoke` (ARREARS_BENCH_SMOKE=all)")
#: The worklist and throughput suites' portfolio: the smallest that trains both champion models.
PORTFOLIO = ["--tenancies", "200", "--years", "2", "--explain", "20"]


def _leftovers(root: Path) -> list[int]:
    """Processes still running with their ARREARS_HOME under `root` (a `bentoml serve` a suite left): stopped."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        home = next((v.removeprefix(b"ARREARS_HOME=") for v in environ if v.startswith(b"ARREARS_HOME=")), None)
        if home and Path(os.fsdecode(home)).is_relative_to(root):
            found.append(int(proc.name))
            os.kill(int(proc.name), signal.SIGKILL)
    return found


def run(root: Path, *args: str) -> str:
    """`python -m <args>` from the repository root, in a fresh home under `root`; its output (stdout and stderr)."""
    tmp = root / "tmp"
    tmp.mkdir(exist_ok=True)
    with isolated_home(root / "home", TMPDIR=str(tmp)):
        process = subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out = process.communicate()[0]
        pytest.fail(f"python -m {' '.join(args)} ran over {TIMEOUT} s:\n{out[-8000:]}")
    finally:
        left = _leftovers(root)
    assert process.returncode == 0, f"python -m {' '.join(args)} exited {process.returncode}:\n{out[-8000:]}"
    assert not left, f"python -m {' '.join(args)} left processes running: {left}"
    return out


def rows(out: str) -> dict[str, str]:
    """Each table row of the output by its measure (the first word of the row that is not a number)."""
    found, in_table = {}, False
    for line in out.splitlines():
        if set(line.strip()) == {"-"}:
            in_table = True
        elif not line.strip():
            in_table = False
        elif in_table:
            words = [w for w in line.split() if not w.replace(",", "").replace(".", "").isdigit()]
            if words:
                found[words[0]] = line
    return found


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench")


@pytest.fixture(scope="module")
def portfolio(root: Path) -> Path:
    """The worklist suite's portfolio, prepared once (`--prepare-only`) for the worklist and throughput suites."""
    work = root / "portfolio"
    run(root, "bench", "--suite", "worklist", *PORTFOLIO, "--workdir", str(work), "--prepare-only")
    assert (work / "capacity.txt").exists()
    return work


def test_every_suite_is_smoked() -> None:
    """A suite added to bench/__main__.py needs its test here."""
    assert set(SUITES) == {name.removeprefix("test_") for name in globals() if name.startswith("test_")} - {
        "every_suite_is_smoked", "ceiling", "monitoring", "cash_backtest", "experiments", "cash_application",
        "coverage_noise"}


def test_pipeline(root: Path) -> None:
    out = run(root, "bench", "--tenancies", "50", "--years", "0.5", "--repeats", "1")
    assert set(rows(out)) >= {"read_csv", "ingest", "snapshots", "score", "score_shap"}
    assert "x read_csv" in rows(out)["ingest"] and "x score" in rows(out)["score_shap"]


@heavy
@pytest.mark.postgres
@pytest.mark.redis
def test_features(root: Path) -> None:
    out = run(root, "bench", "--suite", "features", "--tenancies", "50", "--years", "0.5", "--repeats", "1",
              "--entity-rows", "1000")
    assert set(rows(out)) >= {"snapshots", "naive", "full_build", "unchanged", "one_day", "historical", "sqlite",
                              "redis"}
    assert "x naive" in rows(out)["snapshots"] and "x full_build" in rows(out)["one_day"]


def test_models(root: Path) -> None:
    out = run(root, "bench", "--suite", "models", "--tenancies", "50", "--years", "0.5", "--repeats", "1",
              "--training-rows", "2000", "--payment-cases", "500", "--score-rows", "200")
    assert set(rows(out)) >= {"fit_risk", "fit_payment", "score", "score_shap", "worklist_top50"}


def test_ingest(root: Path) -> None:
    out = run(root, "bench", "--suite", "ingest", "--tenancies", "50", "--rows", "20000", "--repeats", "1")
    assert set(rows(out)) >= {"pyarrow_read", "ingest", "ingest_again"}


@heavy
def test_worklist(root: Path, portfolio: Path) -> None:
    out = run(root, "bench", "--suite", "worklist", *PORTFOLIO, "--repeats", "1", "--workdir", str(portfolio))
    found = rows(out)
    assert set(found) >= {"pure_ranking", "record_run", "score_cold_inprocess", "score_warm_inprocess", "case_now",
                          "empty_http", "score_cold_http", "score_warm_http", "worklist_http", "owners_lookup",
                          "web_page", "web_case", "web_treasury", "web_models"}
    assert "x empty_http" in found["score_cold_http"] and "x empty_http" in found["score_warm_http"]


@heavy
@pytest.mark.skipif(shutil.which("wrk") is None, reason="the throughput suite's load generator: apt-get install -y wrk")
def test_throughput(root: Path, portfolio: Path) -> None:
    out = run(root, "bench", "--suite", "throughput", *PORTFOLIO, "--repeats", "1", "--workdir", str(portfolio),
              "--clients", "2", "--seconds", "1", "--soak-clients", "2", "--soak-seconds", "1")
    assert set(rows(out)) >= {"empty", "score_open", "score_nocache", "score_auth", "soak"}


@heavy
def test_ceiling(root: Path) -> None:
    out = run(root, "bench.ceiling", "--shape", "weekly", "--tenancies", "200", "--seed", "42")
    assert "share of the achievable lift" in out and "payment date: P50 MAE" in out
    assert {"model", "highest", "ceiling"} <= {line.split()[0] for line in out.splitlines() if line.strip()}


@heavy
def test_monitoring(root: Path) -> None:
    out = run(root, "bench.monitoring", "--scenario", "shift", "--tenancies", "100", "--weeks", "2",
              "--change-week", "1")
    for alert in ("feature_drift", "score_drift", "segment_drift", "bias", "performance_drop"):
        assert f"{alert} " in out
    assert "first drift alert from the change" in out


@heavy
def test_cash_backtest(root: Path) -> None:
    out = run(root, "bench.cash_backtest", "--tenancies", "100", "--origins", "1", "--weeks", "2")
    for table in ("portfolio", "patches (pooled)", "by kind of week", "common factor"):
        assert table in out


@heavy
def test_cash_application(root: Path) -> None:
    out = run(root, "bench.cash_application", "--tenancies", "300", "--seeds", "104", "--origins", "2")
    assert "open receipts judged; blocking recall" in out
    for row in ("logistic   strict", "lightgbm   loose", "by fault (logistic, proposals at 0.95)"):
        assert row in out


def test_coverage_noise(root: Path) -> None:
    out = run(root, "bench.coverage_noise", "--runs", "200", "--origins", "13", "--training-weeks", "0", "20")
    assert "coverage of one backtest run by chance alone" in out
    found = [line.split() for line in out.splitlines() if line.split()[:1] == ["13"]]
    assert [r[1] for r in found] == ["known", "20"] and all(0.5 < float(r[-5]) < 0.95 for r in found)


@heavy
def test_experiments(root: Path) -> None:
    out = run(root, "bench.experiments", "--tiny")
    assert "interval covers the true effect in" in out and "expected-gain minus risk order" in out
    assert "AUC on untreated outcomes, first model to last retrain" in out
