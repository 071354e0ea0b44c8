"""The worklist suite: `uv run python -m bench --suite worklist --tenancies 100000 --years 1 [--explain 5000]`.

One simulated portfolio is ingested, featurised and given champion models (trained on thinned weeks: this suite
measures serving, not training). Then, each in a fresh process:

- `pure_ranking`: `serving.runs.worklist.top_cases` on every live tenancy's features in memory: score all, explain the
  top `--explain` (no policy, no I/O, no HTTP).
- `record_run` (vs `pure_ranking`): `serving.runs.record.record_run`: score all, readiness facts from the ledger,
  policy, explain every listable case, record the run.
- `worklist_http` (vs `pure_ranking`): `POST /worklist {"top": --explain}` through a real `bentoml serve`, request to
  response, served from the recorded run.
- `empty_http`: an empty BentoML endpoint (`bench/empty_service.py`), serial p50 of single requests.
- `score_http` (vs `empty_http`): `POST /score` for one tenancy, serial p50 (the online path: Feast online store +
  exact reasons).
- `score_inprocess` (vs `empty_http`): `Worklister.score` for one tenancy without HTTP, p50.
- `web_page`: the web app's worklist page (`GET /app/worklist?queue=ready`, up to 200 cases, auth open) loaded in
  Debian's chromium through Playwright, navigation start to the load event, median of `--repeats` after one warm-up.
- `web_case`, `web_treasury`, `web_models`: the same for the top case's page (statement chart, events, history),
  the treasury page (fan chart, per-patch table, KPIs) and the models and monitoring page.

Each patch's capacity is set so that about `--explain` cases can be listed (and so are explained).
"""

from __future__ import annotations

import math
import os
import signal
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import httpx

PARAMS = {"arrears_risk": {"sample_every_weeks": 13},
          "payment_date": {"sample_every_weeks": 13, "cash": {"backtest_origins": 1, "simulations": 50}}}


def _env(work: Path) -> None:
    from features.settings import load_settings

    os.environ["ARREARS_HOME"] = str(work / "home")
    os.environ["ARREARS_PATCH_CAPACITY"] = (work / "capacity.txt").read_text() if (work / "capacity.txt").exists() \
        else "300"
    for name in ("ARREARS_LEDGER_URL", "ARREARS_FEAST_PROFILE", "ARREARS_MLFLOW_TRACKING_URI"):
        os.environ.pop(name, None)
    load_settings.cache_clear()


def prepare(work: Path, tenancies: int, years: float, explain: int) -> None:
    """Portfolio → ledger → features → champion models → capacity for `explain` listable cases."""
    from features.feeds.ingest import ingest_delivery
    from features.ledger import open_ledger
    from features.store.offline import live_tenancies
    from features.store.refresh import refresh
    from serving.settings import get_settings
    from simulator import simulate_portfolio, write_portfolio
    from training.config import load_params
    from training.promotion import GATES, promote
    from training.train import train_payment_model, train_risk_model

    warnings.simplefilter("ignore")
    _env(work)
    settings = get_settings()
    write_portfolio(simulate_portfolio(n_tenancies=tenancies, years=years, seed=1), work / "delivery")
    with open_ledger(settings.ledger) as ledger:
        ingest_delivery(ledger, work / "delivery", work / "quarantine")
    refresh(settings)
    risk, payment = (load_params(m) for m in ("arrears_risk", "payment_date"))
    train_risk_model(settings, params=risk | PARAMS["arrears_risk"])
    train_payment_model(settings, params=payment | {**PARAMS["payment_date"],
                                                    "cash": payment["cash"] | PARAMS["payment_date"]["cash"]})
    for model in GATES:
        promote(settings, model)
    patches = live_tenancies(settings)["patch"].nunique()
    (work / "capacity.txt").write_text(str(math.ceil(explain / patches)))


def _median_ms(call, n: int, warm: int = 20) -> float:
    for _ in range(warm):
        call()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def _serve(target: str, env: dict[str, str]):
    from serving.api.process import free_port, wait_ready

    port = free_port()
    bentoml = Path(sys.executable).with_name("bentoml")
    process = subprocess.Popen([str(bentoml), "serve", target, "--port", str(port), "--working-dir",
                                str(Path(__file__).resolve().parent.parent)], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, process)
    return url, process


def _stop(process) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)


def measure(kind: str, work: Path, explain: int, repeats: int) -> tuple[float, int]:
    """One measurement in this (fresh) process: (seconds, rows)."""
    warnings.simplefilter("ignore")
    _env(work)
    from serving.settings import get_settings

    settings = get_settings()
    if kind == "pure_ranking":
        from features.store.offline import live_tenancies
        from serving.runs.worklist import top_cases
        from training.registry import RISK_MODEL, load_champion

        live, champion = live_tenancies(settings), load_champion(settings, RISK_MODEL)
        start = time.perf_counter()
        top_cases(live, champion.booster, explain, calibration=champion.calibration)
        return time.perf_counter() - start, len(live)
    if kind == "record_run":
        from serving.runs.record import record_run

        start = time.perf_counter()
        summary = record_run(settings, force=True)
        return time.perf_counter() - start, int(summary.run["population"])
    if kind == "score_inprocess":
        from serving.runs.worklist import Worklister

        worklister = Worklister(settings).warm()
        tenancy = worklister.worklist(1).rows[0].tenancy_id
        return _median_ms(lambda: worklister.score([tenancy]), 300) / 1000, 1
    return _measure_http(kind, settings, explain, repeats)


def _measure_http(kind: str, settings, explain: int, repeats: int) -> tuple[float, int]:
    target = "bench.empty_service:Empty" if kind == "empty_http" else "serving.api.service:ArrearsWorklist"
    url, process = _serve(target, settings.child_process_env())
    try:
        with httpx.Client(timeout=600) as client:
            if kind in WEB_PAGES:
                return _page_load(url, repeats, WEB_PAGES[kind])
            if kind == "worklist_http":
                times, rows = [], 0
                for _ in range(repeats + 1):  # the first warms the worker
                    start = time.perf_counter()
                    answer = client.post(f"{url}/worklist", json={"top": explain})
                    times.append(time.perf_counter() - start)
                    rows = len(answer.json()["rows"])
                return statistics.median(times[1:]), rows
            tenancy = client.post(f"{url}/worklist", json={"top": 1}).json()["rows"][0]["tenancy_id"] \
                if kind == "score_http" else "T1"
            return _median_ms(lambda: client.post(f"{url}/score", json={"tenancy_ids": [tenancy]}), 300) / 1000, 1
    finally:
        _stop(process)


#: Each web page kind: its path (None: the top ready case's page, found on the worklist page).
WEB_PAGES = {"web_page": "/app/worklist?queue=ready", "web_case": None, "web_treasury": "/app/treasury",
             "web_models": "/app/models"}


def _page_load(url: str, repeats: int, path: str | None) -> tuple[float, int]:
    """Seconds for chromium to load a page of the web app (median after one warm-up), and the table rows it shows."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        if path is None:
            page.goto(f"{url}/app/worklist?queue=ready")
            path = page.locator("td[data-label=Tenancy] a").first.get_attribute("href")
        times = []
        for _ in range(repeats + 1):
            start = time.perf_counter()
            page.goto(f"{url}{path}", wait_until="load")
            times.append(time.perf_counter() - start)
        rows = page.locator("tbody tr").count()
        browser.close()
    return statistics.median(times[1:]), rows


def measured(kind: str, workdir: str, explain: int, repeats: int) -> dict:
    """`measure` in a spawned process, with that process's peak memory."""
    from bench.runner import _peak_mb

    seconds, rows = measure(kind, Path(workdir), explain, repeats)
    return {"seconds": seconds, "rows": rows, "peak_mb": _peak_mb()}
