"""A tenancy's pseudonym: a keyed, irreversible stand-in for its id (HMAC-SHA256 under a secret kept outside the
data), the same in every store.

The audit trail chains each entry over this pseudonym (its `subject`), never over the tenancy id, so erasure
(`serving.privacy.erase`) can replace the id beside it by the pseudonym and the chain still verifies. The key is
`ARREARS_PRIVACY_KEY` (production: from the secret store), else a file (`ARREARS_PRIVACY_KEY_FILE`, default
`ARREARS_HOME/secrets/privacy.key`, made on first use, readable by its owner only). Without the key nobody can tell
which tenancy a pseudonym stands for, nor compute one from an id; lose it and new entries get other pseudonyms.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from functools import cache
from pathlib import Path

from pydantic import Field, SecretStr

from features.settings import FeatureSettings, load_settings

#: Every pseudonym starts so: a reader (and a test) can tell one from an id.
PREFIX = "psn_"


class SubjectSettings(FeatureSettings):
    privacy_key: SecretStr | None = Field(
        default=None, description="The secret pseudonyms are keyed with (HMAC-SHA256). Default: the key file.")
    privacy_key_file: Path | None = Field(
        default=None, description="A file holding the pseudonym key, made on first use (owner-only). Default: "
        "ARREARS_HOME/secrets/privacy.key. Keep it out of backups of the data.")

    def key(self) -> bytes:
        if self.privacy_key is not None:
            return self.privacy_key.get_secret_value().encode()
        path = self.privacy_key_file or self.home / "secrets" / "privacy.key"
        return _key_from_file(path.expanduser().resolve())


@cache
def _key_from_file(path: Path) -> bytes:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            return path.read_bytes().strip()
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
    return path.read_bytes().strip()


def pseudonym(tenancy_id: str, key: bytes | None = None) -> str:
    """The tenancy's pseudonym (a pseudonym stays itself: erasing twice changes nothing)."""
    if is_pseudonym(tenancy_id):
        return tenancy_id
    key = key if key is not None else load_settings(SubjectSettings).key()
    return PREFIX + hmac.new(key, tenancy_id.encode(), hashlib.sha256).hexdigest()[:32]


def is_pseudonym(value: str | None) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX) and len(value) == len(PREFIX) + 32
