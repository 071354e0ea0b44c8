"""The worklist suite: `uv run python -m bench --suite worklist --tenancies 100000 --years 2 [--explain 5000]`.

One simulated portfolio is ingested, featurised and given champion models (trained on thinned weeks: this suite
measures serving, not training). Then, each group in a fresh process:

- `pure_ranking`: `serving.runs.worklist.top_cases` on every live tenancy's features in memory: score all, explain the
  top `--explain` (no policy, no I/O, no HTTP).
- `record_run` (vs `pure_ranking`): `serving.runs.record.record_run`: score all, readiness facts from the ledger,
  policy, explain every listable case, record the run (MLflow's client is loaded before the clock starts).
- `score_cold_inprocess`: `Worklister.score` for one tenancy without HTTP, each call a different live tenancy (drawn
  at random, fixed seed) not scored before by this `Worklister`: a Feast online read, the recency features, the
  champion's prediction and its exact reasons. Median of up to 300 calls after 20 warm-up calls (on other tenancies).
- `score_warm_inprocess` (vs `score_cold_inprocess`): the same tenancy again and again: the score cache's answer.
- `case_now` (vs `score_cold_inprocess`): `serving.runs.casework.judge_now` for one tenancy: the case judged now,
  as the case page, a draft and a release do it (its facts read from the ledger by its id, the policy); median over
  the same tenancies as `score_cold_inprocess`.
- `empty_http`: an empty BentoML endpoint (`bench/empty_service.py`): median of 300 serial single requests after
  20 warm-up ones. The floor of BentoML itself, for the two rows after it.
- `score_cold_http` (vs `empty_http`): `POST /score` for one tenancy through a real `bentoml serve`, each request a
  different live tenancy that worker has not scored since the features last changed, so each reads Feast and
  explains (as the first request for a tenancy after a refresh does). Up to 300 requests after 20 warm-up ones (on
  other tenancies): a small portfolio has fewer live tenancies, and the row says how many were timed.
- `score_warm_http` (vs `empty_http`): `POST /score` for the same tenancy again and again: answered from the
  worker's score cache (`ARREARS_SCORE_CACHE`), as every request after the first is until the features change.
- `worklist_http` (vs `pure_ranking`): `POST /worklist {"top": --explain}`, request to response, served from the
  recorded run; median of `--repeats` after one warm-up request.
- `owners_lookup` (vs `worklist_http`): what naming each row's owner adds to a worklist answer
  (`serving.runs.worklist.owners_of` for the rows `worklist_http` returned: one query of the case store); median of
  `--repeats` after WARM_UP untimed calls.
- `web_page`: the web app's worklist page (`GET /app/worklist?queue=ready`, up to 200 cases, auth open) loaded in
  Debian's chromium through Playwright, navigation start to the load event, median of `--repeats` after one warm-up.
- `web_case`, `web_treasury`, `web_models`: the same for the top case's page (statement chart, events, history),
  the treasury page (fan chart, per-patch table, KPIs) and the models and monitoring page.

The service's rows (`score_*_http`, `worklist_http`, `web_*`) share one `bentoml serve`, started once; the cold
requests go first, so no tenancy they ask for has been scored by it. Each patch's capacity is set so that about
`--explain` cases can be listed (and so are explained).
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright

from bench.runner import peak_mb, spawn_result, summary
from casework import cases
from features.feeds.ingest import ingest_delivery
from features.ledger import open_ledger
from features.settings import load_settings
from features.store.offline import live_path, live_tenancies
from features.store.refresh import refresh
from serving.api.process import SERVICE, free_port, stop_group, wait_ready
from serving.runs.casework import judge_now
from serving.runs.record import record_run
from serving.runs.worklist import Worklister, owners_of, top_cases
from serving.settings import get_settings
from simulator import simulate_portfolio, write_portfolio
from training import registry
from training.config import load_params
from training.promotion import GATES, promote
from training.train import train_payment_model, train_risk_model

PARAMS = {"arrears_risk": {"sample_every_weeks": 13},
          "payment_date": {"sample_every_weeks": 13, "cash": {"backtest_origins": 1, "simulations": 50}}}
#: The payment-date model's time split must leave an 8-week embargo both sides of its validation weeks (15% of the
#: labelled weeks): with a year of history there are too few weeks for that (`training.dataset.time_split`).
MIN_YEARS = 1.5
#: Single-request rows: timed requests (at most: a cold request needs a tenancy not asked for before) and warm-ups.
SERIAL, WARM_UP = 300, 20
#: What each group of rows measures, in the order the suite runs them: each group in one fresh process.
GROUPS = {"pure_ranking": ("pure_ranking",), "record_run": ("record_run",),
          "score_inprocess": ("score_cold_inprocess", "score_warm_inprocess", "case_now"),
          "empty_http": ("empty_http",),
          "service": ("score_cold_http", "score_warm_http", "worklist_http", "owners_lookup", "web_page", "web_case",
                      "web_treasury", "web_models")}
#: How long a page may take to load before it counts as failed (the first load of the treasury page computes the
#: collection KPIs from every transaction: tens of seconds at 100k tenancies).
PAGE_TIMEOUT_MS = 600_000
#: Each web page kind: its path (None: the top ready case's page, found on the worklist page).
WEB_PAGES = {"web_page": "/app/worklist?queue=ready", "web_case": None, "web_treasury": "/app/treasury",
             "web_models": "/app/models"}


def env_for(work: Path) -> None:
    """This process's settings: the portfolio's home in `work`, on the embedded defaults whatever the shell says."""
    os.environ["ARREARS_HOME"] = str(work / "home")
    os.environ["ARREARS_PATCH_CAPACITY"] = (work / "capacity.txt").read_text() if (work / "capacity.txt").exists() \
        else "300"
    for name in ("ARREARS_LEDGER_URL", "ARREARS_FEAST_PROFILE", "ARREARS_MLFLOW_TRACKING_URI"):
        os.environ.pop(name, None)
    load_settings.cache_clear()


def prepare(work: Path, tenancies: int, years: float, explain: int) -> None:
    """Portfolio → ledger → features → champion models → capacity for `explain` listable cases."""
    warnings.simplefilter("ignore")
    env_for(work)
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


def _median_ms(calls: list[Callable[[], object]]) -> float:
    """Median milliseconds of `calls` after the first WARM_UP of them (untimed)."""
    for call in calls[:WARM_UP]:
        call()
    times = []
    for call in calls[WARM_UP:]:
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def _fresh_ids(settings) -> list[str]:
    """Live tenancies in a random order (fixed seed), enough for the warm-ups and up to SERIAL timed cold calls."""
    ids = pd.read_parquet(live_path(settings), columns=["tenancy_id"])["tenancy_id"].astype(str).to_numpy()
    return np.random.default_rng(7).permutation(ids)[:WARM_UP + SERIAL].tolist()


@contextmanager
def served(target: str, env: dict[str, str], log: Path) -> Iterator[str]:
    """A real `bentoml serve` of `target` (this repo's service or `bench/empty_service.py`) for the block; yields
    its URL. Its output goes to `log`; it is stopped, with every worker, however the block ends."""
    port = free_port()
    bentoml = Path(sys.executable).with_name("bentoml")
    with open(log, "ab") as out:
        process = subprocess.Popen([str(bentoml), "serve", target, "--port", str(port), "--working-dir",
                                    str(Path(__file__).resolve().parent.parent)], env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, process)
        yield url
    finally:
        stop_group(process, timeout=30)


def _in_process(kind: str, settings, explain: int) -> dict[str, tuple[float, int]]:
    """`pure_ranking`, `record_run` or the two in-process `/score` rows: {kind: (seconds, rows)}."""
    if kind == "pure_ranking":
        live, champion = live_tenancies(settings), registry.load_champion(settings, registry.RISK_MODEL)
        start = time.perf_counter()
        top_cases(live, champion.booster, explain, calibration=champion.calibration)
        return {kind: (time.perf_counter() - start, len(live))}
    if kind == "record_run":
        registry.configure(settings)  # MLflow's client (its import alone is seconds) is not what is measured
        start = time.perf_counter()
        summary = record_run(settings, force=True)
        return {kind: (time.perf_counter() - start, int(summary.run["population"]))}
    worklister = Worklister(settings).warm()
    ids = _fresh_ids(settings)
    cold = _median_ms([lambda t=t: worklister.score([t]) for t in ids])
    warm = _median_ms([lambda: worklister.score(ids[:1])] * (WARM_UP + SERIAL))
    empty = pd.DataFrame(columns=list(cases.TABLES["case_actions"]))
    now = _median_ms([lambda t=t: judge_now(settings, t, empty) for t in ids])
    return {"score_cold_inprocess": (cold / 1000, len(ids) - WARM_UP), "score_warm_inprocess": (warm / 1000, SERIAL),
            "case_now": (now / 1000, len(ids) - WARM_UP)}


def _empty_http(settings, work: Path) -> dict[str, tuple[float, int]]:
    with served("bench.empty_service:Empty", settings.child_process_env(), work / "serve-empty.log") as url, \
            httpx.Client(timeout=600) as client:
        ms = _median_ms([lambda: client.post(f"{url}/score", json={"tenancy_ids": ["T1"]})] * (WARM_UP + SERIAL))
    return {"empty_http": (ms / 1000, SERIAL)}


def _service(settings, work: Path, explain: int, repeats: int) -> dict[str, tuple]:
    """The service's rows against one `bentoml serve`: cold `/score` first (no tenancy scored yet), then warm, then
    the worklist and the web pages."""
    ids = _fresh_ids(settings)
    out = {}
    with served(SERVICE, settings.child_process_env(), work / "serve.log") as url, \
            httpx.Client(timeout=600) as client:
        def score(tenancy: str) -> None:
            client.post(f"{url}/score", json={"tenancy_ids": [tenancy]}).raise_for_status()

        out["score_cold_http"] = _median_ms([lambda t=t: score(t) for t in ids]) / 1000, len(ids) - WARM_UP
        out["score_warm_http"] = _median_ms([lambda: score(ids[0])] * (WARM_UP + SERIAL)) / 1000, SERIAL
        times, rows = [], 0
        for _ in range(repeats + 1):  # the first warms the worker
            start = time.perf_counter()
            answer = client.post(f"{url}/worklist", json={"top": explain})
            times.append(time.perf_counter() - start)
            rows = len(answer.raise_for_status().json()["rows"])
        out["worklist_http"] = statistics.median(times[1:]), rows
        ids = [row["tenancy_id"] for row in answer.json()["rows"]]
        out["owners_lookup"] = _median_ms([lambda: owners_of(settings, ids)] * (WARM_UP + repeats)) / 1000, len(ids)
        out |= _page_loads(url, repeats)
    return out


def _page_loads(url: str, repeats: int) -> dict[str, tuple]:
    """Seconds for chromium to load each page of WEB_PAGES (median after one warm-up), and the table rows it shows;
    a page answered with an error status (or not loaded in time) is not timed: (nan, 0, what went wrong), and the
    next page is loaded."""
    out = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(PAGE_TIMEOUT_MS)
        for kind, path in WEB_PAGES.items():
            try:
                out[kind] = _page_load(page, url, path, repeats)
            except PlaywrightError as error:
                out[kind] = (math.nan, 0, str(error).splitlines()[0])
        browser.close()
    return out


def _page_load(page, url: str, path: str | None, repeats: int) -> tuple:
    if path is None:
        page.goto(f"{url}/app/worklist?queue=ready")
        path = page.locator("td[data-label=Tenancy] a").first.get_attribute("href")
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        response = page.goto(f"{url}{path}", wait_until="load")
        times.append(time.perf_counter() - start)
        if response is None or not response.ok:  # an error page's time is not the page's
            return math.nan, 0, (f"GET {path} answered {response and response.status} (serve.log in the work folder "
                                 "says why)")
    return statistics.median(times[1:]), page.locator("tbody tr").count()


def measure(group: str, work: Path, explain: int, repeats: int) -> dict[str, tuple]:
    """One group of GROUPS in this (fresh) process: {kind: (seconds, rows)}."""
    warnings.simplefilter("ignore")
    env_for(work)
    settings = get_settings()
    if group == "empty_http":
        return _empty_http(settings, work)
    if group == "service":
        return _service(settings, work, explain, repeats)
    return _in_process(group, settings, explain)


def measured(group: str, workdir: str, explain: int, repeats: int) -> dict[str, dict]:
    """`measure` in a spawned process, each row with that process's peak memory (for the HTTP rows: the client's)
    and, if it failed, why."""
    return {kind: {"seconds": seconds, "rows": rows, "peak_mb": peak_mb(), **({"error": error[0]} if error else {})}
            for kind, (seconds, rows, *error) in measure(group, Path(workdir), explain, repeats).items()}


def portfolio(args, stack: contextlib.ExitStack) -> Path:
    """The worklist and throughput suites' portfolio: prepared in --workdir (or a temporary one), reused if there."""
    work = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="arrears-bench-worklist-")))
    if (work / "capacity.txt").exists():
        print(f"reusing the portfolio prepared in {work}", flush=True)
    elif work.exists() and any(work.iterdir()):
        raise SystemExit(f"{work} holds an unfinished preparation (no capacity.txt): remove it and run again")
    elif args.years < MIN_YEARS:
        raise SystemExit(f"--years {args.years:g}: the champion models this suite trains need at least {MIN_YEARS:g} "
                         "years of history (the payment-date model's validation weeks must outlast its 8-week "
                         "embargo)")
    else:
        n = args.tenancies[0]
        print(f"preparing {n:,} tenancies x {args.years:g} years: ingest, features, champion models…", flush=True)
        work.mkdir(parents=True, exist_ok=True)
        spawn_result(prepare, work, n, args.years, args.explain)
    return work


#: The rows of the table, in order, each with its baseline (measured in the same run).
BASELINES = {"pure_ranking": None, "record_run": "pure_ranking", "score_cold_inprocess": None,
             "score_warm_inprocess": "score_cold_inprocess", "case_now": "score_cold_inprocess", "empty_http": None,
             "score_cold_http": "empty_http", "score_warm_http": "empty_http", "worklist_http": "pure_ranking",
             "owners_lookup": "worklist_http", "web_page": None, "web_case": None, "web_treasury": None,
             "web_models": None}


def suite(args) -> list[dict]:
    """Each group of GROUPS in fresh processes (`pure_ranking` and `record_run` `--repeats` times, the others once)."""
    n = args.tenancies[0]
    runs: dict[str, list[dict]] = {}
    with contextlib.ExitStack() as stack:
        work = portfolio(args, stack)
        if args.prepare_only:
            return []
        for group in GROUPS:
            for _ in range(args.repeats if group in ("pure_ranking", "record_run") else 1):
                for kind, outcome in spawn_result(measured, group, str(work), args.explain, args.repeats).items():
                    runs.setdefault(kind, []).append(outcome)
                    print(f"  {kind:<20} {outcome['seconds'] * 1000:10.1f} ms {outcome.get('error', '')}", flush=True)
    results = [summary(runs[kind]) | {"tenancies": n, "measure": kind, "baseline": baseline,
                                      "error": next((r["error"] for r in runs[kind] if "error" in r), None)}
               for kind, baseline in BASELINES.items()]
    print_table(results)
    failed = [f"{r['measure']}: {r['error']}" for r in results if r["error"]]
    if failed:
        raise SystemExit("failed: " + "; ".join(failed))
    return results


def print_table(results: list[dict]) -> None:
    header = (f"{'tenancies':>9} {'measure':<20} {'rows':>8} {'median ms':>10} {'peak MB':>8} {'runs':>4} "
              f"{'vs baseline':>28}")
    print("\n" + header + "\n" + "-" * len(header))
    by_measure = {r["measure"]: r for r in results}
    for r in results:
        if r.get("error"):
            print(f"{r['tenancies']:>9,} {r['measure']:<20} failed: {r['error']}")
            continue
        ratio = (f"{r['seconds'] / by_measure[r['baseline']]['seconds']:.3g}x {r['baseline']}"
                 if r["baseline"] else "")
        print(f"{r['tenancies']:>9,} {r['measure']:<20} {r['rows']:>8,} {r['seconds'] * 1000:>10.1f} "
              f"{r['peak_mb']:>8,.0f} {r['runs']:>4} {ratio:>28}")
