"""The relay's settings, a layer on casework's (the case store it reads the outbox from and keeps its cursors in)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from casework.settings import CaseworkSettings
from features.settings import load_settings


class RelaySettings(CaseworkSettings):
    relay_destinations: Path | None = Field(
        default=None, description="YAML file declaring the destinations the relay delivers the outbox to "
        "(docs/delivery.md: Configuration). Default: relay.yaml under home.")
    relay_max_attempts: int = Field(
        default=8, gt=0, description="Failed attempts after which a message is dead-lettered for a destination and "
        "the relay moves on to the next.")
    relay_backoff_seconds: float = Field(
        default=1.0, gt=0, description="The wait after a message's first failed attempt; each next wait doubles "
        "(with jitter: between half and all of it), up to relay_backoff_max_seconds.")
    relay_backoff_max_seconds: float = Field(default=300.0, gt=0, description="The longest wait between attempts.")
    relay_poll_seconds: float = Field(
        default=2.0, gt=0, description="How often a running relay looks for new messages when it has none.")
    relay_batch: int = Field(default=100, gt=0, description="Messages one read of the outbox returns at most.")
    relay_timeout_seconds: float = Field(
        default=10.0, gt=0, description="How long the relay waits for a destination to confirm one message.")
    relay_lag_alert_seconds: float = Field(
        default=900.0, gt=0, description="Age of the oldest undelivered message past which a destination is "
        "lagging (the RelayDeliveryLagging alert).")
    relay_metrics_port: int = Field(
        default=0, ge=0, description="Port the running relay serves its Prometheus metrics on (/metrics); 0: none.")

    @property
    def destinations_file(self) -> Path:
        return self.relay_destinations or self.home / "relay.yaml"


def get_settings() -> RelaySettings:
    return load_settings(RelaySettings)
