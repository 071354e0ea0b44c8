"""The ceiling: how far a model could go on a simulated portfolio if it knew what the simulator knows.

"Precision 0.47 at capacity" cannot be read as good or poor on its own. On a simulated portfolio the hidden truth
is known: each tenancy's latent propensities (how often it skips or part-pays, catches up, keeps arrangements,
how late it pays, how prone it is to shocks) and whether it is in a shock episode on the day. The **oracle** is the
same learner, on the same rows and split, given that truth beside the features; what it reaches is the ceiling the
data allows (not a proof of an upper bound: it is also a finite-sample estimate; it knows nothing of the future,
only the state and propensities on the day). The model is then reported as the share of the lift over
highest-balance-first that the oracle achieves which it also achieves.

Used only when a truth folder is given (`arrears train --truth DIR`, the demo); never on real ledgers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from training import payment_date as pdm
from training.evaluate import ranking_metrics
from training.risk import fit_and_calibrate, score

#: The simulator's per-tenancy propensities and circumstances (`simulator.portfolio` ground truth, tenancies.csv).
PROPENSITIES = ("p_skip", "p_partial", "partial_share_low", "partial_share_high", "catchup_share", "p_catchup",
                "p_keep_arrangement", "p_agree_arrangement", "shock_rate_per_year", "delay_base_days",
                "delay_jitter_days", "p_no_answer", "pays_in_advance", "hb_coverage", "uc_coverage",
                "legacy_arrears_weeks")
CATEGORIES = ("archetype", "pays_by", "pay_cycle")
SHOCK_STATE = ("truth_in_shock", "truth_shock_severity", "truth_shock_p_miss", "truth_shock_income_factor",
               "truth_shock_days_in")


class Truth:
    """The hidden truth of a simulated portfolio, read from the folder `arrears simulate` writes beside the feeds."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        tenancies = self._read("tenancies")
        if tenancies is None:
            raise ValueError(f"{folder} holds no simulator truth (tenancies.csv): pass the DIR_truth folder that "
                             "`arrears simulate --out DIR` wrote")
        for column in CATEGORIES:
            tenancies[column] = pd.Categorical(tenancies[column].astype(str)).codes.astype(float)
        self.tenancies = tenancies.set_index("tenancy_id")[[*PROPENSITIES, *CATEGORIES]].astype(float)
        shocks = self._read("shocks")
        if shocks is None:
            shocks = pd.DataFrame(columns=["tenancy_id", "start_date", "end_date"])
        self.shocks = shocks.assign(start_date=pd.to_datetime(shocks["start_date"]),
                                    end_date=pd.to_datetime(shocks["end_date"]))

    def _read(self, name: str) -> pd.DataFrame | None:
        if (self.folder / f"{name}.parquet").exists():
            return pd.read_parquet(self.folder / f"{name}.parquet").astype({"tenancy_id": str})
        if (self.folder / f"{name}.csv").exists():
            return pd.read_csv(self.folder / f"{name}.csv", dtype={"tenancy_id": str})
        return None

    def columns(self) -> list[str]:
        return [f"truth_{c}" for c in (*PROPENSITIES, *CATEGORIES)] + list(SHOCK_STATE)

    def join(self, frame: pd.DataFrame) -> pd.DataFrame:
        """`frame` (tenancy_id, event_timestamp, …) with the truth on each row's day: propensities and shock state."""
        out = frame.join(self.tenancies.add_prefix("truth_"), on="tenancy_id")
        day = pd.to_datetime(frame["event_timestamp"]).dt.tz_localize(None).dt.normalize()
        keyed = pd.DataFrame({"tenancy_id": frame["tenancy_id"].to_numpy(), "day": day.to_numpy(),
                              "row": np.arange(len(frame))})
        spells = keyed.merge(self.shocks, on="tenancy_id", how="inner")
        spells = spells[(spells["start_date"] <= spells["day"])
                        & (spells["end_date"].isna() | (spells["end_date"] > spells["day"]))]
        spells = spells.sort_values("start_date").drop_duplicates("row", keep="last").set_index("row")
        state = pd.DataFrame(index=np.arange(len(frame)))
        state["truth_in_shock"] = state.index.isin(spells.index).astype(float)
        for name, column in (("severity", "severity"), ("p_miss", "p_miss_payment"),
                             ("income_factor", "income_factor")):
            state[f"truth_shock_{name}"] = spells[column].reindex(state.index).astype(float)
        state["truth_shock_days_in"] = (spells["day"] - spells["start_date"]).dt.days.reindex(state.index)
        return pd.concat([out.reset_index(drop=True), state.reset_index(drop=True)], axis=1).set_index(frame.index)


def risk_ceiling(truth: Truth, split, test: pd.DataFrame, names: list[str], lgb_params: dict,
                 capacity: float, metrics: dict[str, float]) -> dict[str, float]:
    """The oracle's ranking metrics on the model's test rows, and the share of its lift the model reaches."""
    oracle_names = [*names, *truth.columns()]
    train, valid, held = (truth.join(part) for part in (split.train, split.valid, test))
    booster, calibration = fit_and_calibrate(train, valid, oracle_names, lgb_params)
    held = held.assign(oracle_raw=score(booster, held, oracle_names, calibration)["risk_raw"])
    oracle = ranking_metrics(held, "oracle_raw", capacity=capacity)
    out = {f"ceiling_{k}": v for k, v in oracle.items()}
    for metric in ("precision_at_capacity", "captured_at_capacity"):
        base = metrics[f"{metric}_balance_baseline"]
        room = oracle[metric] - base
        out[f"ceiling_share_of_lift_{metric}"] = (metrics[metric] - base) / room if room > 0 else float("nan")
    return out


def payment_ceiling(truth: Truth, split, test: pd.DataFrame, names: list[str], lgb_params: dict,
                    horizon: int) -> dict[str, float]:
    """The payment-date oracle's P50 MAE (and coverage) on the model's test cases."""
    oracle_names = [*names, *truth.columns()]
    train, valid, held = (truth.join(part) for part in (split.train, split.valid, test))
    booster = pdm.fit(train, valid, oracle_names, lgb_params)
    held = held.drop(columns=[c for c in ("p10", "p50", "p90", "p_within_horizon") if c in held])
    held = held.join(pdm.predict_quantiles(booster, held, pdm.calibrate_interval(booster, valid, horizon)))
    oracle = pdm.payment_metrics(held, horizon)
    return {"ceiling_mae_days": oracle["mae_days"], "ceiling_p10_p90_coverage": oracle["p10_p90_coverage"]}

