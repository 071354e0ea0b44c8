"""Destinations, declared in a YAML file (`ARREARS_RELAY_DESTINATIONS`), never in code:

```yaml
destinations:
  - name: crm                       # unique; the relay's cursor, counts and dead letters are kept under it
    kind: webhook
    url: https://crm.example.org/arrears/contacts
    secret_env: ARREARS_RELAY_SECRET_CRM   # the variable holding the signing secret (never the secret itself)
  - name: print-room
    kind: amqp
    url: amqp://guest:guest@127.0.0.1:5672/
    exchange: arrears.contacts      # declared durable, type direct ("" : the default exchange)
    routing_key: contact.released
    queue: print-room               # declared durable and bound to the exchange with the routing key
```
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

KINDS = ("webhook", "amqp")
NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


class DestinationError(ValueError):
    """The destinations file is not usable; the message says what to fix."""


@dataclass(frozen=True)
class Destination:
    name: str
    kind: str
    url: str
    secret_env: str | None = None
    exchange: str = ""
    routing_key: str = ""
    queue: str | None = None

    def secret(self) -> bytes:
        """The webhook's signing secret, from the variable the file names."""
        value = os.environ.get(self.secret_env or "")
        if not value:
            raise DestinationError(f"destination {self.name}: set the environment variable {self.secret_env} to its "
                                   "signing secret")
        return value.encode()


def load_destinations(path: Path) -> list[Destination]:
    if not path.exists():
        raise DestinationError(f"no destinations file at {path}: write one (docs/delivery.md) and name it with "
                               "ARREARS_RELAY_DESTINATIONS")
    declared = (yaml.safe_load(path.read_text()) or {}).get("destinations") or []
    found = [_destination(entry) for entry in declared]
    names = [d.name for d in found]
    if len(set(names)) != len(names):
        raise DestinationError(f"{path}: destination names must be unique ({', '.join(names)})")
    return found


def _destination(entry: dict) -> Destination:
    name, kind, url = str(entry.get("name", "")), entry.get("kind"), entry.get("url")
    if not NAME.match(name):
        raise DestinationError(f"destination name {name!r}: lower-case letters, digits, '_', '-', '.'")
    if kind not in KINDS or not url:
        raise DestinationError(f"destination {name}: kind must be one of {', '.join(KINDS)}, with a url")
    if kind == "webhook":
        if not entry.get("secret_env"):
            raise DestinationError(f"destination {name}: name the variable holding its secret with secret_env")
        if not str(url).startswith(("https://", "http://")):
            raise DestinationError(f"destination {name}: a webhook's url is http(s)://")
        return Destination(name, kind, str(url), secret_env=str(entry["secret_env"]))
    if not entry.get("routing_key") and not entry.get("queue"):
        raise DestinationError(f"destination {name}: an amqp destination needs a routing_key or a queue")
    return Destination(name, kind, str(url), exchange=str(entry.get("exchange") or ""),
                       routing_key=str(entry.get("routing_key") or entry.get("queue")), queue=entry.get("queue"))
