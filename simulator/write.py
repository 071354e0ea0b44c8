"""Writing a portfolio: feeds and ground truth as CSV or Parquet files, via Arrow.

`write_portfolio` writes the feeds to a delivery folder and the truth to a separate folder. `to_arrow` turns a
frame into the Arrow table that is written (dates as date32, money as exact 2-dp decimals in CSV); the export
faults of `simulator.faults` start from the same text, so a dirty portfolio holds exactly what would be written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from simulator.model import Portfolio


def pounds_decimal(values: np.ndarray) -> pa.Array:
    """Money in pounds as an exact 2-dp decimal array (written to CSV as plain "-12.50"); NaN → null."""
    values = np.asarray(values, dtype=float)
    valid = ~np.isnan(values)
    pence = np.rint(np.where(valid, values, 0.0) * 100).astype("<i8")
    words = np.stack([pence, np.where(pence < 0, -1, 0).astype("<i8")], axis=1)  # 128-bit two's complement
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little").tobytes())
    return pa.Array.from_buffers(pa.decimal128(18, 2), len(pence), [bitmap, pa.py_buffer(words.tobytes())])


def _arrow_column(series: pd.Series, money_as_text: bool) -> pa.Array | pa.ChunkedArray:
    """One frame column as Arrow: vocabularies and text as strings, dates as date32, floats (money) as exact
    decimals when ``money_as_text``."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        return pa.array(series.astype(object).where(series.notna(), None).to_numpy(), type=pa.string())
    if pd.api.types.is_datetime64_any_dtype(series):
        return pa.array(series.to_numpy().astype("datetime64[D]"), type=pa.date32(), mask=series.isna().to_numpy())
    if pd.api.types.is_bool_dtype(series):
        return pa.array(series.to_numpy(dtype=bool))
    if pd.api.types.is_float_dtype(series):
        return pounds_decimal(series.to_numpy()) if money_as_text else pa.array(series.to_numpy(), from_pandas=True)
    if pd.api.types.is_integer_dtype(series):
        return pa.array(series.to_numpy())
    if isinstance(series.array, pd.arrays.ArrowStringArray):
        return pa.array(series.array)
    return pa.array(series.astype(object).where(series.notna(), None).to_numpy(), type=pa.string())


def to_arrow(frame: pd.DataFrame, fmt: str) -> pa.Table:
    """A frame as an Arrow table ready to write: dates as date32, money as exact 2-dp decimals for CSV."""
    return pa.table({column: _arrow_column(frame[column], money_as_text=(fmt == "csv")) for column in frame.columns})


def _write_table(table: pa.Table, path: Path, fmt: str) -> None:
    """Write ``table`` to ``path`` through a temporary file, so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    if fmt == "csv":
        pacsv.write_csv(table, tmp, write_options=pacsv.WriteOptions(include_header=True, quoting_style="needed"))
    else:
        pq.write_table(table, tmp, compression="zstd")
    tmp.replace(path)


def write_portfolio(
    portfolio: Portfolio, out_dir: Path, truth_dir: Path | None = None, fmt: str = "csv"
) -> dict[str, Path]:
    """Write the feeds to ``out_dir`` (tenancies, transactions, unless the portfolio's shape has none events, and
    where simulated suspense and dwp_schedules, as ``fmt``: "csv" or "parquet") and the ground truth to
    ``truth_dir`` (default: a sibling folder ``<out_dir name>_truth``), never inside out_dir, since ingestion treats
    every file in the delivery folder as a feed.

    Folders are created; this function's own files are overwritten (and an events, suspense or schedules file of
    ``fmt`` left by an earlier portfolio removed, when this one has no such feed). Returns feed name → path, and
    ``"truth/<table>"`` → path for the truth tables. CSV: UTF-8, comma-separated, header row, ISO dates, money
    with 2 dp, empty for missing. Dirty portfolios are written as text exactly as held.
    """
    if fmt not in ("csv", "parquet"):
        raise ValueError("fmt must be 'csv' or 'parquet'")
    out_dir = Path(out_dir)
    truth_dir = Path(truth_dir) if truth_dir is not None else out_dir.parent / f"{out_dir.name}_truth"
    out_res, truth_res = out_dir.resolve(), truth_dir.resolve()
    if truth_res == out_res or truth_res.is_relative_to(out_res):
        raise ValueError(f"truth_dir {truth_dir} must not be inside out_dir {out_dir}: every file there is a feed")
    out_dir.mkdir(parents=True, exist_ok=True)
    truth_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name in (*portfolio.frames(), "suspense", "dwp_schedules"):
        if name in portfolio.feeds():
            continue
        (out_dir / f"{name}.{fmt}").unlink(missing_ok=True)
    for name, frame in portfolio.feeds().items():
        path = out_dir / f"{name}.{fmt}"
        _write_table(to_arrow(frame, fmt), path, fmt)
        paths[name] = path
    for name, frame in portfolio.ground_truth.items():
        path = truth_dir / f"{name}.{fmt}"
        _write_table(to_arrow(frame, fmt), path, fmt)
        paths[f"truth/{name}"] = path
    return paths


__all__ = ["pounds_decimal", "to_arrow", "write_portfolio"]
