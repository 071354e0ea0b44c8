"""The relay as a process: stops cleanly on SIGTERM or SIGINT (the message being sent is finished or left for the
next start; the cursor is never ahead of what a destination confirmed), and serves its metrics if asked."""

from __future__ import annotations

import signal
import threading

from relay.deliver import run
from relay.observe import serve_metrics
from relay.settings import RelaySettings, get_settings


def run_process(settings: RelaySettings, once: bool = False) -> None:
    stop = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: stop.set())
    server = serve_metrics(settings, settings.relay_metrics_port) if settings.relay_metrics_port and not once else None
    try:
        run(settings, once=once, stop=stop)
    finally:
        if server is not None:
            server[0].shutdown()


def main(argv: list[str]) -> int:
    run_process(get_settings(), once="--once" in argv)
    return 0
