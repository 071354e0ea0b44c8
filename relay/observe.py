"""What the relay tells its operators: per destination the outbox depth (messages after its cursor), the age of
the oldest undelivered message, and counts of deliveries, failed attempts and dead letters, read from the case
store when asked (a Prometheus scrape of the running relay's /metrics), and the alerts they fire."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from features.db import Database
from relay.settings import RelaySettings
from relay.store import DEAD_LETTERING, open_relay_store

#: The alert when a destination's oldest undelivered message is older than `relay_lag_alert_seconds`.
LAGGING = "RelayDeliveryLagging"
STATS = ("destination", "kind", "cursor", "depth", "oldest_undelivered_seconds", "delivered", "failed",
         "dead_letters")


def delivery_stats(db: Database, now: datetime | None = None) -> pd.DataFrame:
    """One row per destination the relay has served (STATS columns); `oldest_undelivered_seconds` is 0 when
    nothing waits."""
    rows = db.query(
        "SELECT c.destination, c.kind, c.seq AS cursor, c.delivered, c.failed, c.dead_letters, "
        "(SELECT COUNT(*) FROM outbox o WHERE o.seq > c.seq) AS depth, "
        "(SELECT MIN(o.released_at) FROM outbox o WHERE o.seq > c.seq) AS oldest "
        "FROM relay_cursors c ORDER BY c.destination")
    now = now or datetime.now(UTC)
    ages = [0.0 if pd.isna(oldest) else max(0.0, (now - pd.Timestamp(oldest).to_pydatetime()).total_seconds())
            for oldest in rows["oldest"]]
    rows = rows.assign(oldest_undelivered_seconds=ages)
    for column in ("cursor", "depth", "delivered", "failed", "dead_letters"):
        rows[column] = rows[column].fillna(0).astype(int)
    return rows[list(STATS)]


def alerts_firing(stats: pd.DataFrame, settings: RelaySettings) -> list[tuple[str, str, str]]:
    """(alert, destination, why) for each destination that has dead-lettered a message, or whose oldest undelivered
    message is older than `relay_lag_alert_seconds` (docs/delivery.md gives the Prometheus rules of both)."""
    firing = []
    for row in stats.to_dict("records"):
        if row["dead_letters"]:
            firing.append((DEAD_LETTERING, row["destination"], f"{row['dead_letters']} message(s) dead-lettered"))
        if row["oldest_undelivered_seconds"] > settings.relay_lag_alert_seconds:
            firing.append((LAGGING, row["destination"], f"oldest undelivered message "
                           f"{row['oldest_undelivered_seconds']:.0f} s old"))
    return firing


class DeliveryCollector:
    """A Prometheus collector reading the case store on each scrape."""

    def __init__(self, settings: RelaySettings) -> None:
        self.settings = settings

    def collect(self):
        with open_relay_store(self.settings) as db:
            stats = delivery_stats(db)
        gauges = {"depth": ("arrears_relay_outbox_depth", "Outbox messages after the destination's cursor"),
                  "oldest_undelivered_seconds": ("arrears_relay_oldest_undelivered_seconds",
                                                 "Age of the oldest message the destination has not confirmed")}
        counters = {"delivered": ("arrears_relay_delivered", "Messages the destination confirmed"),
                    "failed": ("arrears_relay_failed_attempts", "Attempts the destination did not confirm"),
                    "dead_letters": ("arrears_relay_dead_letters", "Messages dead-lettered for the destination")}
        for column, (name, doc) in gauges.items():
            family = GaugeMetricFamily(name, doc, labels=["destination", "kind"])
            for row in stats.to_dict("records"):
                family.add_metric([row["destination"], row["kind"]], float(row[column]))
            yield family
        for column, (name, doc) in counters.items():
            family = CounterMetricFamily(name, doc, labels=["destination", "kind"])
            for row in stats.to_dict("records"):
                family.add_metric([row["destination"], row["kind"]], float(row[column]))
            yield family


def serve_metrics(settings: RelaySettings, port: int, host: str = "127.0.0.1"):
    """Serve the delivery metrics on http://host:port/metrics from a background thread; returns (server, thread)."""
    registry = CollectorRegistry()
    registry.register(DeliveryCollector(settings))
    return start_http_server(port, addr=host, registry=registry)
