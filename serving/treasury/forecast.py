"""The cash forecast for treasury, now: expected receipts per week for the next 13 weeks with P10/P50/P90,
portfolio-wide and per patch, from the champion payment-date model and each live tenancy's current features and
habits. An adapter over `training.cash` (the same simulation the training backtest judges), reading the current
snapshot of every live tenancy, so it runs on a schedule without the HTTP service (`arrears forecast`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from features.ledger import open_ledger
from features.schedules import lines_known_on
from features.store.feast import exact_features, open_store
from features.store.offline import live_tenancies, load_ledger_slice
from features.timeline import population
from serving.income.schedules import read_schedule_books
from serving.settings import ServingSettings
from serving.treasury.history import forecast_id, open_forecasts
from training import cash, evidence, registry
from training.config import load_params
from training.labels import PaymentLabelSpec
from training.payment_date import QUANTILES, Interval, quantile_days


@dataclass(frozen=True)
class CashForecast:
    table: pd.DataFrame  #: as_of, scope (portfolio or a patch), week, week_start, mean, p10, p50, p90 (pounds)
    as_of: pd.Timestamp
    model_version: str
    tenancies: int  #: live tenancies the forecast covers (current tenancies only: no new lettings)
    per_tenancy: pd.DataFrame  #: each tenancy's expected payments (`_per_tenancy`)
    #: scope, month (YYYY-MM), month_start, days (of the month counted: the first is the rest of as_of's month),
    #: mean, p10, p50, p90 (pounds), charge_mondays; empty when not asked for
    months: pd.DataFrame = field(default_factory=pd.DataFrame)
    rent_years: list = field(default_factory=list)  #: the rent years the months touch, with their charge weeks
    blend: cash.Blend = field(default_factory=cash.Blend)  #: the simulation's weight by week ahead
    rent_change_pct: float = 0.0  #: the scenario: payments from the first Monday of April changed by this


@dataclass(frozen=True)
class ForecastFiles:
    csv: Path
    json: Path
    plot: Path
    per_tenancy: Path
    months: Path | None = None  #: the calendar months (when the forecast has them)


#: What every forecast says of its scope.
COVERS = ("The tenancies live on as_of, each from its own payment habits and the payment-date model: new lettings "
          "and tenancy ends over the horizon are not in it, so read it as the receipts of today's tenancies.")


def _live_at(settings: ServingSettings, as_of: pd.Timestamp, feature_service: str) -> pd.DataFrame:
    """Every tenancy live on a past `as_of`, with its features as of that day, exactly (the day's snapshot is
    computed when the store holds none: a weekly snapshot from days before would make every recency stale, and the
    payment-date model would expect payments already made)."""
    with open_ledger(settings.ledger, read_only=True) as ledger:
        register = ledger.read_table("tenancy_register")
    rows = population(register, [as_of])
    frame, missing = exact_features(settings, open_store(settings), rows, feature_service)
    if len(missing) > 0.01 * len(rows):
        raise ValueError(f"{len(missing):,} of the {len(rows):,} tenancies live on {as_of.date()} have no features "
                         "as of that day: run `arrears features` to bring the feature store up to date")
    return frame.drop(columns=["patch"], errors="ignore").merge(register[["tenancy_id", "patch"]], on="tenancy_id")


#: The months' simulation runs a year, about four times the weeks' work a draw: it takes a third of their draws.
MONTH_DRAWS_SHARE = 3


def forecast_now(settings: ServingSettings, weeks: int | None = None, simulations: int | None = None,
                 seed: int = 0, as_of: pd.Timestamp | None = None, months: int = 12,
                 rent_change_pct: float = 0.0) -> CashForecast:
    """Simulate receipts with the champion payment-date model from the ledger's latest date, or from an earlier
    `as_of` (the tenancies live then, their features and habits as of then): `weeks` weeks (the simulation blended
    with the naive baseline by the champion's weights) and `months` calendar months (the same simulation run
    longer, 0: none); `rent_change_pct` is a scenario applied to payments from the first Monday of April."""
    params = load_params("payment_date")
    weeks = weeks or params["cash"]["weeks"]
    simulations = simulations or params["cash"]["simulations"]
    champion = registry.load_champion(settings, registry.PAYMENT_MODEL)
    live, part = _forecast_inputs(settings, as_of, params["feature_service"])
    as_of = pd.Timestamp(live["event_timestamp"].max())
    day, patches = as_of.tz_localize(None).normalize(), live["patch"].astype(str).to_numpy()
    last_day = (day.to_period("M") + months).to_timestamp(how="end") if months else day + pd.Timedelta(weeks=weeks)
    lines = _schedule_lines(settings, day, int(np.ceil((last_day - day).days / 7)))
    money = cash.OwnMoney.of(part.transactions, part.tenancies, lines, PaymentLabelSpec(**params["label"]))
    habits: dict = {}
    blend, factor = cash.Blend.from_tags(champion.ref.tags), cash.CommonFactor.from_tags(champion.ref.tags)

    def simulate(horizon: cash.Horizon, draws: int, record: dict | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        return cash.forecast_with_schedules(champion.booster, live, part.tenancies, money, as_of, weeks, draws, seed,
                                            horizon, habits=record, blend=blend)

    sims, known = simulate(cash.Horizon.weekly(weeks).with_rent_change(day, rent_change_pct), simulations, habits)
    table = cash.summarise(sims, patches, day, factor, seed, known)
    table.insert(0, "as_of", as_of.date())
    by_month, years = pd.DataFrame(), []
    if months:
        horizon = cash.Horizon.monthly(day, months).with_rent_change(day, rent_change_pct)
        own, scheduled = simulate(horizon, max(1, simulations // MONTH_DRAWS_SHARE))
        by_month = cash.summarise_months(own, patches, day, horizon, factor, seed, scheduled)
        years = cash.rent_years(day + pd.Timedelta(days=1), day + pd.Timedelta(days=horizon.days))
    sims = sims if known is None else sims + known
    return CashForecast(table, as_of, champion.ref.version, len(live),
                        _per_tenancy(live, sims, habits, Interval.from_tags(champion.ref.tags), as_of,
                                     factor.lift(cash.week_starts(day, weeks))),
                        by_month, years, blend, float(rent_change_pct))


def _schedule_lines(settings: ServingSettings, day: pd.Timestamp, weeks: int) -> pd.DataFrame | None:
    """The DWP schedule lines expected after `day` for `weeks`, from what was known on `day` (as the training
    backtest judges them: `features.schedules.lines_known_on`, so a forecast from an earlier `as_of` does not know
    the lines, postings or tenancy end dates that came later); None without the schedules feed or with no line
    expected (the forecast is then as before)."""
    with open_ledger(settings.ledger, read_only=True) as ledger:
        if not ledger.columns_of("dwp_schedules"):
            return None
        books = read_schedule_books(ledger)
    if books.schedules.empty:
        return None
    return lines_known_on(books.schedules, books.tenancies, books.transactions.assign(type="benefit"), day, weeks)


def _forecast_inputs(settings: ServingSettings, as_of: pd.Timestamp | None, feature_service: str):
    """The live tenancies with their features and the ledger, as of the latest data or an earlier `as_of`."""
    live = live_tenancies(settings).reset_index(drop=True)
    latest = pd.Timestamp(live["event_timestamp"].max())
    part = load_ledger_slice(settings)
    if as_of is not None and pd.Timestamp(as_of).normalize() != latest.tz_localize(None).normalize():
        day = pd.Timestamp(as_of).normalize()
        first = pd.Timestamp(part.transactions["posted_date"].min())
        if not first + pd.Timedelta(weeks=13) <= day < latest.tz_localize(None):
            raise ValueError(f"as_of {day.date()} is outside the ledger's forecastable dates: from "
                             f"{(first + pd.Timedelta(weeks=13)).date()} (13 weeks of history) to "
                             f"{latest.date()} (the latest data). Leave as_of out for today's forecast.")
        live = _live_at(settings, day, feature_service)
        part = replace(part, transactions=part.transactions[pd.to_datetime(part.transactions["posted_date"]) <= day])
    return live, part


def _per_tenancy(live: pd.DataFrame, sims: np.ndarray, habits: dict, interval: Interval,
                 as_of: pd.Timestamp, lift: np.ndarray) -> pd.DataFrame:
    """Each tenancy's expected payments, for treasury's own models: the next payment's date band (the payment-date
    model's P10/P50/P90 at its calibrated levels; empty beyond its horizon), the usual amount a payment and the
    expected receipts over the forecast's weeks (the mean of the simulations, each week times the common factor's
    `lift`, so the tenancies add up to the portfolio's forecast)."""
    day = as_of.tz_localize(None).normalize()
    bands = {name: quantile_days(habits["cdf"], q) for name, q in
             (("p10", interval.lower), ("p50", QUANTILES["p50"]), ("p90", interval.upper))}
    frame = pd.DataFrame({"tenancy_id": live["tenancy_id"].to_numpy(), "patch": live["patch"].astype(str).to_numpy(),
                          "usual_payment": habits["amount"] / 100.0})
    for name, days in bands.items():
        frame[f"next_payment_{name}"] = [None if not np.isfinite(d) else (day + pd.Timedelta(days=float(np.ceil(d))))
                                         .date() for d in days]
    frame["p_payment_within_horizon"] = habits["cdf"][:, -1]
    frame["expected_receipts"] = (sims.mean(axis=0) * lift[None, :]).sum(axis=1) / 100.0
    return frame.round({"usual_payment": 2, "expected_receipts": 2, "p_payment_within_horizon": 4})


def record_forecast(settings: ServingSettings, forecast: CashForecast) -> tuple[str, bool]:
    """Keep the forecast in the forecast history (`serving.treasury.history`), once: (its id, whether it was new)."""
    if forecast.rent_change_pct:
        raise ValueError("A scenario (a rent change) is answered, never kept in the forecast history")
    with open_forecasts(settings) as store:
        return store.record(forecast.as_of, forecast.model_version, forecast.table, forecast.tenancies,
                            forecast.months)


def write_forecast(forecast: CashForecast, out_dir: Path) -> ForecastFiles:
    """The forecast as CSV and JSON (pounds to the penny), its calendar months as CSV, and a fan chart (PNG) a
    person can open."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = ForecastFiles(out_dir / "cash_forecast.csv", out_dir / "cash_forecast.json", out_dir / "cash_forecast.png",
                          out_dir / "expected_payments.csv")
    forecast.table.round(2).to_csv(files.csv, index=False)
    forecast.table.round(2).to_json(files.json, orient="records", date_format="iso", indent=2)
    forecast.per_tenancy.to_csv(files.per_tenancy, index=False)  # for treasury's own models
    if not forecast.months.empty:
        files = replace(files, months=out_dir / "cash_forecast_months.csv")
        forecast.months.round(2).to_csv(files.months, index=False)
    evidence.forecast_plot(forecast.table, files.plot,
                           title=f"Expected receipts by week from {forecast.as_of.date()} (P10–P90)")
    return files


def forecast_csv(rows: pd.DataFrame, header: dict) -> pd.DataFrame:
    """The forecast as its CSV holds it (the service's `/cash_forecast_csv` and the treasury page's download): one
    row per scope and week, with as_of and model_version on every row, pounds to the penny."""
    return rows.assign(as_of=header["as_of"], model_version=header["model_version"]).round(2)


def served_forecast(settings: ServingSettings, weeks: int = 13, patch: str | None = None,
                    as_of: pd.Timestamp | None = None, rent_change_pct: float = 0.0) -> tuple[pd.DataFrame, dict]:
    """The forecast as the service answers it: today's comes from the forecast history when it holds the one for
    (today, champion version, weeks) (the nightly `refresh` job records it), else it is simulated now and recorded.
    One from an earlier `as_of`, or with a rent change scenario, is simulated on request and never recorded: made
    with today's model, it would flatter the history's accuracy. Returns its rows (scope, week, week_start, mean,
    p10, p50, p90; the portfolio first, then every patch or the one asked for) and its header (with its calendar
    months, the rent years they touch and the blend's weights). Raises LookupError for a patch the forecast does
    not know, ValueError for an as_of it cannot be made from."""
    champion = registry.model_by_alias(settings, registry.PAYMENT_MODEL, registry.CHAMPION)
    today = pd.Timestamp(live_tenancies(settings)["event_timestamp"].max()).tz_localize(None).normalize()
    if rent_change_pct or (as_of is not None and pd.Timestamp(as_of).normalize() != today):
        made = forecast_now(settings, weeks=weeks, as_of=None if as_of is None else pd.Timestamp(as_of),
                            rent_change_pct=rent_change_pct)
        rows, months = made.table.drop(columns=["as_of"]), made.months
        key = forecast_id(made.as_of, made.model_version, weeks) + (":scenario" if rent_change_pct else ":hindcast")
        run = {"as_of": made.as_of, "model_version": made.model_version, "weeks": weeks, "tenancies": made.tenancies}
        recorded = False
    else:
        key = forecast_id(today, champion.version, weeks)
        with open_forecasts(settings) as store:
            runs = store.runs().set_index("forecast_id")
            if key not in runs.index:
                made = forecast_now(settings, weeks=weeks)
                key, _ = store.record(made.as_of, made.model_version, made.table, made.tenancies, made.months)
                runs = store.runs().set_index("forecast_id")
            run = runs.loc[key].to_dict()
            rows, months = store.weeks([key]).drop(columns=["forecast_id"]), store.months(key)
        recorded = True
    rows, months = _in_scope(rows, patch, run), _in_scope(months, patch, run, "month")
    header = {"forecast_id": key, "as_of": str(pd.Timestamp(run["as_of"]).date()), "recorded": recorded,
              "model_version": str(run["model_version"]), "weeks": int(run["weeks"]),
              "tenancies": int(run["tenancies"]), "covers": COVERS, "rent_change_pct": float(rent_change_pct),
              **_horizons(months, cash.Blend.from_tags(champion.tags))}
    return rows.assign(week_start=pd.to_datetime(rows["week_start"])), header


def _in_scope(rows: pd.DataFrame, patch: str | None, run: dict, order_by: str = "week") -> pd.DataFrame:
    """The portfolio's rows first, then every patch's, or the one asked for (LookupError: no such patch)."""
    if rows.empty:
        return rows
    scopes = sorted(set(rows["scope"]) - {"portfolio"})
    if patch is not None:
        if patch not in scopes:
            raise LookupError(f"No patch {patch!r} in the forecast of {pd.Timestamp(run['as_of']).date()}: the "
                              f"patches are {', '.join(scopes)}")
        scopes = [patch]
    order = {scope: i for i, scope in enumerate(["portfolio", *scopes])}
    rows = rows[rows["scope"].isin(order)].assign(_order=lambda f: f["scope"].map(order))
    return rows.sort_values(["_order", order_by]).drop(columns="_order").reset_index(drop=True)


def _horizons(months: pd.DataFrame, blend: cash.Blend) -> dict:
    """The header's calendar months (pounds to the penny), the rent years they touch and the blend's weights."""
    years = []
    if not months.empty:
        first, last = months["month_start"].min(), pd.Period(months["month"].max()).end_time.normalize()
        years = [{**y, "starts": str(y["starts"]), "ends": str(y["ends"])} for y in cash.rent_years(first, last)]
    listed = months.assign(month_start=pd.to_datetime(months["month_start"]).dt.strftime("%Y-%m-%d")).round(2) \
        if not months.empty else months
    return {"months": listed.to_dict("records"), "rent_years": years,
            "blend_weights": list(blend.weight(13)) if blend.weights else []}
