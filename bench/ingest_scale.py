"""Suite `ingest`: one large delivery (default 15M transaction rows) through ingestion, against pyarrow's plain read.

Preparation simulates a *dirty* portfolio (the simulator's export faults: bad dates, amounts, types, repeats and
conflicts, unknown tenancies) and tiles it into one delivery of the requested size: copy k of every row gets
`-k` after its ids, so the faults are there at scale and every key stays distinct between copies.

Measures, each in a freshly spawned process (its peak RSS its own), median of `--repeats`:
- `pyarrow_read`: `pyarrow.csv.read_csv` of every CSV in the delivery (the floor: parse only, all cores);
- `ingest`: `ingest_delivery` into a new DuckDB ledger (every check, quarantine, one transaction);
- `ingest_again`: the same delivery once more into the ledger that now holds it (every row a duplicate or
  quarantined again: the re-delivery path, joined against 15M stored rows).
"""

from __future__ import annotations

import resource
import shutil
import time
from datetime import date
from pathlib import Path

#: The day deliveries are judged against (the simulator's portfolios end on 2026-10-31).
TODAY = date(2026, 11, 1)


def prepare(work: Path, rows: int, tenancies: int) -> dict:
    """Simulate a dirty portfolio and tile it to about `rows` transaction rows in `work/delivery`."""
    import duckdb

    from simulator import simulate_portfolio, write_portfolio

    seed = work / "seed"
    write_portfolio(simulate_portfolio(n_tenancies=tenancies, years=2, seed=1, dirty=True), seed / "delivery")
    con = duckdb.connect()
    per_copy = con.execute(f"SELECT count(*) FROM read_csv('{seed}/delivery/transactions.csv', all_varchar = true)"
                           ).fetchone()[0]
    copies = max(1, round(rows / per_copy))
    out = work / "delivery"
    out.mkdir(parents=True, exist_ok=True)
    suffixed = {"transactions": ("transaction_id", "tenancy_id"), "tenancies": ("tenancy_id",)}
    for feed, ids in suffixed.items():
        src = f"read_csv('{seed}/delivery/{feed}.csv', all_varchar = true, header = true)"
        replace = ", ".join(f"{c} || '-' || k AS {c}" for c in ids)
        con.execute(f"COPY (SELECT * REPLACE ({replace}) FROM {src}, range({copies}) r(k) ORDER BY k) "
                    f"TO '{out}/{feed}.csv' (HEADER, FORCE_QUOTE *)")
    shutil.rmtree(seed)
    return {"copies": copies, "transactions": per_copy * copies}


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(kind: str, workdir: str) -> dict:
    work = Path(workdir)
    delivery = work / "delivery"
    if kind == "pyarrow_read":
        import pyarrow.csv as pv

        start = time.perf_counter()
        rows = sum(pv.read_csv(path).num_rows for path in sorted(delivery.glob("*.csv")))
        return {"seconds": time.perf_counter() - start, "rows": rows, "peak_mb": _peak_mb()}
    from features.feeds.ingest import Clock, ingest_delivery
    from features.ledger import open_ledger

    ledger_path = work / "ledger.duckdb"
    if kind == "ingest":
        for stale in work.glob("ledger.duckdb*"):
            stale.unlink()
    else:  # ingest_again: into the ledger the last `ingest` left; judged a day later, so not recognised as a rerun
        assert ledger_path.exists(), "ingest_again needs an ingest first"
    clock = Clock(TODAY if kind == "ingest" else date.fromordinal(TODAY.toordinal() + 1))
    start = time.perf_counter()
    with open_ledger(f"duckdb:///{ledger_path}") as ledger:
        summary = ingest_delivery(ledger, delivery, work / "quarantine", clock)
    seconds = time.perf_counter() - start
    feeds = {name: (f.read, f.accepted, f.duplicate, f.quarantined) for name, f in summary.feeds.items()}
    return {"seconds": seconds, "rows": sum(f.read for f in summary.feeds.values()), "peak_mb": _peak_mb(),
            "feeds": feeds}
