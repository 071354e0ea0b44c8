"""Start a real `bentoml serve` process for the worklist service, and talk to it over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from serving.api.errors import GRACEFUL_SECONDS
from serving.settings import ServingSettings

SERVICE = "serving.api.service:ArrearsWorklist"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class ServerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_command(port: int, host: str = "127.0.0.1", target: str = SERVICE) -> list[str]:
    """`bentoml serve` of the service in this repo, or of `target` (a built Bento's tag). On SIGTERM its requests in
    flight get `GRACEFUL_SECONDS` to finish; a worker still running `STOP_SECONDS` after the signal ends itself
    (`serving.api.errors`), so the whole process group is gone within 10 seconds."""
    bentoml = Path(sys.executable).with_name("bentoml")
    where = ["--working-dir", str(PROJECT_ROOT)] if target == SERVICE else []
    return [str(bentoml) if bentoml.exists() else "bentoml", "serve", target, "--host", host, "--port", str(port),
            "--timeout-graceful-shutdown", str(GRACEFUL_SECONDS), *where]


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"bentoml serve exited with code {process.returncode} before it was ready")
        try:
            if httpx.get(f"{url}/readyz", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise ServerError(f"bentoml serve was not ready within {timeout:.0f}s")


@contextmanager
def running_server(settings: ServingSettings, port: int | None = None, log_path: Path | None = None,
                   target: str = SERVICE) -> Iterator[str]:
    """A real `bentoml serve` (of this repo's service, or a built Bento's tag) on localhost for the duration of the
    block; yields its base URL."""
    port = port or free_port()
    log_path = log_path or settings.logs_dir / "serve.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = settings.child_process_env()
    with open(log_path, "ab") as log:
        process = subprocess.Popen(serve_command(port, target=target), env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_ready(url, process)
        except ServerError as exc:
            raise ServerError(f"{exc}; see {log_path}") from exc
        yield url
    finally:
        stop_group(process)


def stop_group(process: subprocess.Popen, timeout: float = 20) -> None:
    """Stop a process started in a session of its own, with its children: SIGTERM to the group, SIGKILL after
    `timeout` seconds."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def fetch_worklist(url: str, top: int, patch: str | None = None, states: list[str] | None = None) -> dict:
    response = httpx.post(f"{url}/worklist", json={"top": top, "patch": patch, "states": states or ["ready"]},
                          timeout=300.0)
    response.raise_for_status()
    return response.json()
