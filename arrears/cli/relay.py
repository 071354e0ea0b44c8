"""`arrears relay`: deliver the outbox to the configured destinations (signed webhooks, RabbitMQ), at least once."""

from __future__ import annotations

from typing import Annotated

import typer

from arrears.render import console, fail, print_json
from relay.destinations import DestinationError
from relay.settings import get_settings

# Lazy on purpose: the relay's clients (pika, httpx) and its metrics are imported inside the verb; every arrears
# command, `arrears --help` included, imports this module (arrears/cli/serving.py gives the cost of httpx).


def relay(
    once: Annotated[bool, typer.Option("--once", help="Deliver what is waiting (retrying, dead-lettering) and "
                                       "exit, instead of running until SIGTERM.")] = False,
    status: Annotated[bool, typer.Option("--status", help="Print each destination's cursor, outbox depth, oldest "
                                         "undelivered age, deliveries, failures and dead letters, and the alerts "
                                         "firing, as JSON; deliver nothing.")] = False,
) -> None:
    """Deliver every released message in the outbox at least once to each destination declared in the destinations
    file (ARREARS_RELAY_DESTINATIONS; docs/delivery.md): webhooks signed with HMAC-SHA256, RabbitMQ with publisher
    confirms. Runs until SIGTERM (stopping cleanly); a restarted relay resumes after the last message each
    destination confirmed."""
    from relay.observe import alerts_firing, delivery_stats
    from relay.process import run_process
    from relay.store import open_relay_store

    settings = get_settings()
    if status:
        with open_relay_store(settings) as db:
            stats = delivery_stats(db)
        print_json({"destinations": stats.to_dict("records"),
                    "alerts": [{"alert": a, "destination": d, "why": w} for a, d, w in alerts_firing(stats, settings)]})
        return
    try:
        if not once:
            console.print(f"Relaying the outbox to the destinations in {settings.destinations_file} (SIGTERM to stop)")
        run_process(settings, once=once)
    except DestinationError as exc:
        fail(str(exc))
