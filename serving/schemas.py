"""Every input and output of the HTTP service, typed, so the OpenAPI spec (`/docs.json`) is real and can be fuzzed."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Reason(BaseModel):
    feature: str = Field(description="Model feature name")
    value: float | None = Field(description="The tenancy's value of the feature (null when unknown)")
    contribution: float = Field(description="SHAP contribution to the raw score (log-odds); positive raises risk")
    text: str = Field(description="What an officer reads")


class ScoredCase(BaseModel):
    tenancy_id: str
    patch: str | None = None
    risk_score: float = Field(description="Calibrated probability that arrears grow within the label horizon")
    raw_score: float = Field(description="Model raw score (log-odds) = base_value + all contributions")
    base_value: float = Field(description="SHAP expected value of the raw score over the training data")
    reasons: list[Reason]
    other_contribution: float = Field(description="Sum of the contributions not listed in reasons")


class WorklistRow(ScoredCase):
    rank: int


class ScoreResponse(BaseModel):
    model_version: str
    feature_service: str
    scores: list[ScoredCase]
    unknown: list[str] = Field(description="Requested tenancy_ids with no online features (not scored)")


class WorklistResponse(BaseModel):
    model_version: str
    feature_service: str
    as_of: str = Field(description="Date the features are as of: the ledger's latest posting date")
    population: int = Field(description="Live tenancies considered (after the patch filter)")
    rows: list[WorklistRow]
    unscored: list[str] = Field(description="Live tenancies with no online features: need review, not a score")
