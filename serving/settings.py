"""Serving's settings: training's (the registry the champion comes from), plus where served outputs are written,
where worklist runs are recorded, and how many cases each patch's list holds."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from casework.settings import CaseworkSettings
from features.db import is_postgres
from features.settings import load_settings
from training.settings import TrainingSettings


class ServingSettings(TrainingSettings, CaseworkSettings):
    runs_url: str | None = Field(
        default=None, description="Database of recorded worklist runs. Default: the ledger's Postgres database in "
        "the production profile, else an SQLite file under home (the service reads it while batch jobs write).")
    patch_capacity: int = Field(
        default=300, gt=0, description="Cases each patch's list holds (the rest wait; the list says how many). Every "
        "case that can be listed is explained when a run is recorded.")
    suspense_propose_at: float = Field(
        default=0.95, gt=0, le=1, description="Cash application: a receipt in suspense whose most likely tenancy has "
        "at least this match probability (and no other candidate above 0.5) is proposed for one-click approval; "
        "below it, queued with its ranked candidates. Nothing is allocated without a person's approval "
        "(docs/income.md: chosen so that at least 99% of proposals are right on simulated portfolios).")
    suspense_queue_at: float = Field(
        default=0.5, ge=0, le=1, description="A receipt in suspense whose most likely tenancy has at least this "
        "match probability holds that tenancy as ambiguous_balance (receipt_in_suspense) until it is allocated or "
        "the match rejected.")
    suspense_matcher: Literal["logistic", "lightgbm"] = Field(
        default="lightgbm", description="The classifier matching learns from the ledger's cleared receipts "
        "(docs/income.md compares them).")
    auth: Literal["open", "required"] | None = Field(
        default=None, description="required: every data endpoint needs a bearer token (`arrears users add`); open: "
        "anyone may call it (the service says so at start-up). Default: required in the production profile "
        "(Postgres ledger or feature store), open on the embedded laptop default.")
    auth_cache_seconds: float = Field(
        default=10.0, ge=0, description="How long the service trusts a token it has checked before it checks it "
        "again: a revoked token stops working within this time (0: check every request).")
    session_idle_seconds: float = Field(
        default=1800.0, gt=0, description="A web app session not used for this long ends (the person signs in again).")
    session_absolute_seconds: float = Field(
        default=43_200.0, gt=0, description="A web app session ends this long after it started, however much it is "
        "used (12 hours: a working day).")
    cookie_secure: bool | None = Field(
        default=None, description="true: the session cookie is sent only over HTTPS; false: never marked so. Default: "
        "marked Secure when the request came over HTTPS (or a trusted proxy says so).")
    trusted_proxies: list[str] = Field(
        default_factory=list, description="Addresses of reverse proxies whose X-Forwarded-For and X-Forwarded-Proto "
        "the service believes (JSON list). Behind an untrusted proxy every caller has the proxy's address.")
    auth_failures_free: int = Field(
        default=10, ge=1, description="Wrong tokens or sign-ins an address (or a principal) may present before each "
        "further one blocks it, for 1 s, then 2 s, 4 s… (answered 429 with Retry-After).")
    auth_lockout_seconds: float = Field(
        default=900.0, gt=0, description="The longest block after failed sign-ins or tokens (the lockout); failures "
        "are forgotten this long after the last.")
    oidc_issuer: str | None = Field(
        default=None, description="Single sign-on: the OpenID Connect provider's issuer URL, exactly as its discovery "
        "document says (docs/access.md). Unset: no single sign-on, tokens only.")
    oidc_client_id: str | None = Field(default=None, description="This service's client id at the provider.")
    oidc_client_secret: SecretStr | None = Field(default=None, description="This service's client secret.")
    oidc_audience: str | None = Field(
        default=None, description="The audience the provider's API access tokens (JWTs) name. Default: the client id.")
    oidc_scopes: str = Field(default="openid profile email", description="Scopes the sign-in asks for (add the one "
                             "that releases the groups claim, if the provider has one: `groups` on Okta, Keycloak).")
    oidc_redirect_base: str | None = Field(
        default=None, description="The service's public address, e.g. https://arrears.example.org: the provider sends "
        "people back to <this>/app/sso/callback. Default: the address the request came to.")
    oidc_groups: Path | None = Field(
        default=None, description="The groups → role and patches mapping. Default: serving/access/oidc.yaml.")
    oidc_provider_name: str = Field(default="single sign-on", description="The provider's name on the sign-in page.")
    oidc_leeway_seconds: float = Field(
        default=30.0, ge=0, description="Clock difference allowed when judging a provider token's expiry.")
    max_body_bytes: int = Field(default=1_000_000, gt=0, description="Largest request body the service reads.")
    body_timeout_seconds: float = Field(
        default=10.0, gt=0, description="How long the service waits for a request's whole body: a client that stops "
        "sending part-way is answered 408 instead of holding a worker (and its shutdown) for ever.")
    score_cache: int = Field(
        default=100_000, ge=0, description="Scored tenancies each service worker keeps in memory, answered without "
        "a feature lookup until the features or the champion change (0: none).")
    score_move: float = Field(
        default=0.10, gt=0, description="A change in risk score this large between two runs is reported as a move.")
    experiments: Path | None = Field(
        default=None, description="The randomised-holdout experiments file (docs/experiments.md). Default: "
        "serving/runs/experiments.yaml shipped with the service (one example, disabled).")
    retrain_promotes: bool = Field(
        default=False, description="true: the scheduled `retrain` promotes each challenger that passes its gates, "
        "with no person's sign-off. false (the default): each challenger that passes waits for a data scientist to "
        "approve or refuse it (`arrears promote --approve/--refuse`, or the models page).")

    @property
    def auth_required(self) -> bool:
        if self.auth is not None:
            return self.auth == "required"
        return self.feast_profile == "production" or bool(self.ledger_url and is_postgres(self.ledger_url))

    @property
    def runs_database(self) -> str:
        if self.runs_url:
            return self.runs_url
        if self.ledger_url and is_postgres(self.ledger_url):
            return self.ledger_url
        return f"sqlite:///{self.home / 'serving.sqlite'}"

    @property
    def reports_dir(self) -> Path:
        """Worklists, cash forecasts and monitoring reports, as files a person can open."""
        return self.home / "reports"

    @property
    def experiment_reports_dir(self) -> Path:
        """Each experiment's latest report as JSON (`monitoring.experiment_reports` writes it; the experiments page
        reads it): `<name>.json`."""
        return self.reports_dir / "experiments"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"


def get_settings() -> ServingSettings:
    return load_settings(ServingSettings)
