"""What the treasury endpoints answer, typed, so the service's OpenAPI spec (`/docs.json`) is real and can be
fuzzed: the cash forecast by week and by calendar month, and the collection KPIs by month."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ForecastWeek(BaseModel):
    scope: str = Field(description="portfolio, or a patch")
    week: int = Field(description="Weeks ahead: week 1 is the seven days after as_of")
    week_start: str = Field(description="First day of the week (YYYY-MM-DD)")
    mean: float = Field(description="Expected receipts in pounds (the scopes' means add up to the portfolio's)")
    p10: float = Field(description="Receipts fall below this in 1 week in 10 (bands do not add up across scopes)")
    p50: float
    p90: float = Field(description="Receipts exceed this in 1 week in 10")
    scheduled: float = Field(0.0, description="Of the mean, the DWP's scheduled lines expected in the week (known "
                             "lines with their own small spread; 0 without the schedules feed)")


class ForecastMonth(BaseModel):
    scope: str = Field(description="portfolio, or a patch")
    month: str = Field(description="Calendar month (YYYY-MM); the first is the rest of as_of's month")
    month_start: str = Field(description="First day counted (YYYY-MM-DD): the 1st, or the day after as_of")
    days: int = Field(description="Days of the month counted")
    mean: float = Field(description="Expected receipts in pounds (the same simulation as the weeks, run longer; "
                        "not blended with the baseline)")
    p10: float
    p50: float
    p90: float
    scheduled: float = Field(0.0, description="Of the mean, the DWP's scheduled lines expected in the month")
    charge_mondays: int = Field(description="Mondays among its days: the weekly rent charges it holds")


class RentYear(BaseModel):
    rent_year: str = Field(description="e.g. 2030/31: from the first Monday of April")
    starts: str
    ends: str
    charge_weeks: int = Field(description="Mondays in the rent year: 53 in a 53-week rent year, when weekly rents "
                              "charged on Mondays are charged 53 times")


class CashForecastResponse(BaseModel):
    forecast_id: str = Field(description="The forecast's id in the forecast history (as_of, model version, weeks)")
    recorded: bool = Field(description="Kept in the forecast history (today's forecast); a forecast from an earlier "
                           "as_of is made with today's model and is not kept")
    as_of: str = Field(description="Date the forecast is made from: the data's as_of")
    model_version: str = Field(description="The payment-date model version it was simulated with")
    weeks: int
    tenancies: int = Field(description="Live tenancies on as_of that the forecast covers")
    covers: str = Field(description="What the forecast does and does not include")
    rent_change_pct: float = Field(0.0, description="The scenario asked for: payments from the first Monday of "
                                   "April changed by this percentage (0: none; a scenario is never recorded)")
    blend_weights: list[float] = Field(default_factory=list, description="By week ahead, the simulation's weight "
                                       "in the mean against the last-4-weeks baseline (1 - weight), from the "
                                       "payment model's training backtest; empty: the simulation alone")
    rows: list[ForecastWeek]
    months: list[ForecastMonth] = Field(default_factory=list, description="Calendar months: the rest of as_of's "
                                        "month and the 12 after it")
    rent_years: list[RentYear] = Field(default_factory=list, description="The rent years the months touch")


class KpiRow(BaseModel):
    month: str = Field(description="Calendar month (YYYY-MM); the running month is as at the ledger's last posting")
    scope: str = Field(description="portfolio, or a patch")
    rent_due: float = Field(description="Rent charged in the month (pounds)")
    collected: float = Field(description="Payments and benefit credits received in the month, less reversals")
    collection_rate: float | None = Field(description="collected / rent_due (null with no rent due)")
    current_tenancies: int = Field(description="Tenancies current at the month's end")
    current_arrears: float = Field(description="Positive balances of the current tenancies at the month's end")
    annual_rent_roll: float = Field(description="A year's rent of the current tenancies")
    current_arrears_pct_of_roll: float | None = Field(description="current_arrears / annual_rent_roll")
    former_arrears: float = Field(description="Positive balances of tenancies ended by the month's end")
    written_off: float = Field(description="Arrears written off in the month (positive)")
    days_rent_outstanding: float | None = Field(description="current_arrears / (annual_rent_roll / 365)")


class CollectionKpis(BaseModel):
    as_of: str = Field(description="The ledger's last posting date")
    definitions: str = Field(description="Where each figure is defined")
    rows: list[KpiRow]
