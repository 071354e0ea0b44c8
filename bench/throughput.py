"""The throughput suite: `uv run python -m bench --suite throughput --tenancies 3000 --workdir DIR`.

Many clients at once against a real `bentoml serve`, each sending one request after another (keep-alive) for a
fixed time, every request naming one tenancy drawn at random (fixed seed) from the live portfolio. The load comes
from wrk (`apt-get install -y wrk`: a C load generator, so a Python client's own cost is not what is measured),
after a warm-up in which every tenancy is asked for once (as in a service in steady use: each tenancy is scored
once after the features change, then answered from memory; `score_nocache` is the cold path).
Measured in the same run, with the same load generator and the same worker count:

- `empty`: an endpoint that does nothing but answer (`bench/empty_service.py`): the floor of BentoML itself;
- `score_open`: `POST /score` with auth open (the demo's default): warm, every tenancy answered from the worker's
  score cache after the warm-up;
- `score_nocache`: the same with `ARREARS_SCORE_CACHE=0`: cold, every request a Feast lookup and exact SHAP (as the
  first request for each tenancy after a refresh is);
- `score_auth`: `POST /score` with `ARREARS_AUTH=required`, as an officer holding three patches, asking for
  tenancies of those patches (warm, as `score_open`);
- `soak`: `score_auth` with `--soak-clients` clients for `--soak-seconds` seconds (the issue asks 50 for 60 s).

Each row gives requests per second, p50/p99 latency and errors (a status of 400 or more, or a failed connection):
the run with the median requests per second of `--repeats` (interleaved), errors summed over all runs. The
portfolio is the worklist suite's (`bench/worklist.py`: prepared once in `--workdir`, reused).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import httpx
import pandas as pd

from bench.runner import spawn_result
from bench.worklist import SERVICE, env_for, portfolio, served
from features.store.offline import live_path
from serving.access.principals import open_principals
from serving.runs.record import record_run
from serving.runs.store import open_runs
from serving.settings import get_settings

#: wrk's Lua hooks: a random body per request (fixed seed), a JSON line of totals at the end.
SCRIPT = """
local bodies = {%s}
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
math.randomseed(%d)
request = function() return wrk.format(nil, nil, nil, bodies[math.random(#bodies)]) end
done = function(s, latency, requests)
  io.write(string.format('RESULT {"requests": %%d, "duration_us": %%d, "errors": %%d, "non_2xx": %%d, '
    .. '"p50_us": %%d, "p99_us": %%d}\\n', s.requests, s.duration,
    s.errors.connect + s.errors.read + s.errors.write + s.errors.timeout, s.errors.status,
    latency:percentile(50), latency:percentile(99)))
end
"""


def _wrk(url: str, script: Path, clients: int, seconds: float, headers: dict) -> dict:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("the throughput suite drives the load with wrk (a C load generator, so the client is not "
                         "what is measured): `apt-get install -y wrk`")
    command = [wrk, "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--timeout", "60s", "-s", str(script)]
    command += [arg for name, value in headers.items() for arg in ("-H", f"{name}: {value}")]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    totals = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
    return {"requests": totals["requests"], "errors": totals["errors"] + totals["non_2xx"],
            "rps": totals["requests"] / (totals["duration_us"] / 1e6),
            "p50_ms": totals["p50_us"] / 1000, "p99_ms": totals["p99_us"] / 1000}


def _load(url: str, ids: list[str], clients: int, seconds: float, headers: dict, folder: Path) -> dict:
    """Warm up as a service in steady use is (every tenancy asked for once since the features last changed: 1,000
    ids a request, then 5 s of the load itself, or `seconds` if shorter), then measure."""
    with httpx.Client(timeout=600, headers=headers) as client:
        for k in range(0, len(ids), 1000):
            client.post(url, json={"tenancy_ids": ids[k:k + 1000]}).raise_for_status()
    script = folder / "load.lua"
    script.write_text(SCRIPT % (",".join(json.dumps(json.dumps({"tenancy_ids": [t]})) for t in ids), 7))
    _wrk(url, script, clients, min(5, seconds), headers)
    return _wrk(url, script, clients, seconds, headers)


def _officer_token(settings) -> tuple[str, list[str]]:
    """An officer holding the first three patches (made once; a new token each run)."""
    with open_runs(settings) as runs:
        patches = sorted(str(p) for p in runs.queue_sizes(runs.latest()["run_id"])["patch"].dropna().unique())[:3]
    with open_principals(settings) as store:
        store.revoke("bench-officer")
        return store.add("bench-officer", "officer", patches), patches


def measure(kind: str, workdir: str, clients: int, seconds: float) -> dict:
    """One load run in this (fresh) process against a freshly started server."""
    warnings.simplefilter("ignore")
    work = Path(workdir)
    env_for(work)
    settings = get_settings()
    live = pd.read_parquet(live_path(settings), columns=["tenancy_id", "patch"])
    env, headers = settings.child_process_env(), {}
    if kind != "empty":
        record_run(settings)  # the worklist run the service reads patches from (a no-op once recorded)
    if kind == "score_nocache":
        env = env | {"ARREARS_SCORE_CACHE": "0"}
    if kind in ("score_auth", "soak"):
        token, patches = _officer_token(settings)
        env, headers = env | {"ARREARS_AUTH": "required"}, {"Authorization": f"Bearer {token}"}
        live = live[live["patch"].isin(patches)]  # an officer scores the tenancies of their own patches
    ids = live["tenancy_id"].astype(str).tolist()
    target = "bench.empty_service:Empty" if kind == "empty" else SERVICE
    with served(target, env | {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")},
                work / f"serve-{kind}.log") as url, tempfile.TemporaryDirectory() as folder:
        return _load(f"{url}/score", ids, clients, seconds, headers, Path(folder))


def print_table(results: list[dict]) -> None:
    header = (f"{'measure':<13} {'clients':>7} {'seconds':>7} {'runs':>4} {'requests':>9} {'errors':>6} "
              f"{'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'vs empty':>8}")
    print("\n" + header + "\n" + "-" * len(header))
    empty = next((r["rps"] for r in results if r["measure"] == "empty"), None)
    for r in results:
        ratio = f"{r['rps'] / empty:.2f}x" if empty and r["measure"] != "empty" else ""
        print(f"{r['measure']:<13} {r['clients']:>7} {r['seconds']:>7.0f} {r['runs']:>4} {r['requests']:>9,} "
              f"{r['errors']:>6} "
              f"{r['rps']:>8.1f} {r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f} {ratio:>8}")


def suite(args) -> list[dict]:
    """`--repeats` interleaved runs of each kind, then one soak run; each row the run with the median requests/s."""
    plan = [(kind, args.clients, args.seconds) for kind in ("empty", "score_open", "score_nocache", "score_auth")]
    results = []
    with contextlib.ExitStack() as stack:
        work = portfolio(args, stack)
        if args.prepare_only:
            return results
        runs: dict[str, list[dict]] = {}
        for _ in range(args.repeats):  # interleaved, so a slow spell of the machine hits every measure alike
            for kind, clients, seconds in plan:
                result = spawn_result(measure, kind, str(work), clients, seconds)
                runs.setdefault(kind, []).append(result)
                print(f"  {kind:<13} {result['rps']:8.1f} req/s, {result['errors']} errors", flush=True)
        soak = spawn_result(measure, "soak", str(work), args.soak_clients, args.soak_seconds)
        print(f"  soak          {soak['rps']:8.1f} req/s, {soak['errors']} errors", flush=True)
        for kind, clients, seconds in plan + [("soak", args.soak_clients, args.soak_seconds)]:
            outcomes = runs.get(kind, [soak])
            median = sorted(outcomes, key=lambda r: r["rps"])[len(outcomes) // 2]
            results.append(median | {"measure": kind, "clients": clients, "seconds": seconds, "runs": len(outcomes),
                                     "errors": sum(r["errors"] for r in outcomes), "tenancies": args.tenancies[0],
                                     "all_rps": [round(r["rps"], 1) for r in outcomes]})
    print_table(results)
    return results
