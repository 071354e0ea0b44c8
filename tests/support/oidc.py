"""A real OpenID provider for the sign-in tests: the certified `oidc-provider` package from the npm registry, run by
Node.js from `tests/support/oidc/` (installed with `npm ci` on first use), on a free port of 127.0.0.1.

The fixture owns its data: the users (password, email, groups) are a JSON file the provider reads at every sign-in,
so a test can take someone out of a group between two sign-ins; the signing keys are a file read at start, so a key
rotation restarts the provider on the same port with a new key first (the old one still published). Every process
is started in a session of its own and stopped with its children.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
from joserfc.jwk import RSAKey

from serving.api.process import free_port, stop_group

FOLDER = Path(__file__).resolve().parent / "oidc"
AUDIENCE = "api://arrears"
#: The web app's client, and a second client whose API tokens last two seconds (the expired-token test).
WEB_CLIENT, SHORT_CLIENT = "arrears-web", "arrears-short"


def install() -> None:
    """`npm ci` once (node_modules kept, ignored by git)."""
    if (FOLDER / "node_modules" / "oidc-provider").exists():
        return
    npm = shutil.which("npm")
    assert npm, "npm (Node.js 20) is needed for the local OpenID provider"
    done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=FOLDER, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def new_key(kid: str) -> dict:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"}).as_dict(private=True)


class LocalProvider:
    """One provider process; `url` is its issuer."""

    def __init__(self, folder: Path, redirect_uris: list[str], users: dict[str, dict]) -> None:
        self.folder, self.port = folder, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.secret = secrets.token_urlsafe(24)
        self.keys = [new_key("key-1")]
        self.process: subprocess.Popen | None = None
        folder.mkdir(parents=True, exist_ok=True)
        clients = [{"client_id": client, "client_secret": self.secret, "redirect_uris": redirect_uris,
                    "grant_types": ["authorization_code"], "response_types": ["code"]}
                   for client in (WEB_CLIENT, SHORT_CLIENT)]
        (folder / "provider.json").write_text(json.dumps({
            "issuer": self.url, "port": self.port, "clients": clients, "audience": AUDIENCE,
            "cookie_key": secrets.token_urlsafe(24), "access_token_ttl": {SHORT_CLIENT: 2}}))
        self.set_users(users)

    def set_users(self, users: dict[str, dict]) -> None:
        """The provider's users from now on: name → {"password", "email", "groups"}."""
        written = self.folder / "users.json.new"
        written.write_text(json.dumps(users))
        written.replace(self.folder / "users.json")

    def start(self) -> None:
        (self.folder / "jwks.json").write_text(json.dumps({"keys": self.keys}))
        node = shutil.which("node")
        assert node, "node (Node.js 20) is needed for the local OpenID provider"
        with open(self.folder / "provider.log", "ab") as log:
            self.process = subprocess.Popen([node, str(FOLDER / "provider.js"), str(self.folder)], cwd=FOLDER,
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.folder / "provider.log").read_text()[-2000:]
            try:
                if httpx.get(f"{self.url}/.well-known/openid-configuration", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError("the OpenID provider was not ready within 60 s")

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process, timeout=10)
            self.process = None

    def rotate(self) -> str:
        """Publish a new signing key, first (so it signs from now on), the old ones kept; the provider restarts on
        the same port. Returns the new key's id."""
        kid = f"key-{len(self.keys) + 1}"
        self.keys = [new_key(kid), *self.keys]
        self.stop()
        self.start()
        return kid

    def api_token(self, user: str, password: str, client: str = WEB_CLIENT, redirect_uri: str | None = None) -> str:
        """An access token for the API (a JWT), got as any client gets one: the authorization code flow with PKCE
        through the provider's own login form, over HTTP."""
        provider = json.loads((self.folder / "provider.json").read_text())
        redirect_uri = redirect_uri or provider["clients"][0]["redirect_uris"][0]
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        with httpx.Client(base_url=self.url, timeout=30) as http:
            answer = http.get("/auth", params={
                "client_id": client, "response_type": "code", "redirect_uri": redirect_uri,
                "scope": "openid profile groups api", "state": "s", "code_challenge": challenge,
                "code_challenge_method": "S256", "resource": AUDIENCE})
            while answer.status_code in (302, 303) and not answer.headers["location"].startswith(redirect_uri):
                answer = http.get(urljoin(self.url, answer.headers["location"]))
            if answer.status_code == 200:  # the login form
                action = re.search(r'action="([^"]+)"', answer.text).group(1)
                answer = http.post(action, data={"login": user, "password": password})
                while answer.status_code in (302, 303) and not answer.headers["location"].startswith(redirect_uri):
                    answer = http.get(urljoin(self.url, answer.headers["location"]))
            assert answer.status_code in (302, 303), answer.text[:500]
            query = parse_qs(urlsplit(answer.headers["location"]).query)
            assert "code" in query, query
            code = query["code"][0]
            token = http.post("/token", auth=(client, self.secret), data={
                "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                "code_verifier": verifier, "resource": AUDIENCE})
            assert token.status_code == 200, token.text
            return token.json()["access_token"]


@contextmanager
def local_provider(folder: Path, redirect_uris: list[str], users: dict[str, dict]) -> Iterator[LocalProvider]:
    """A started provider for the block; stopped, with its children, whatever happens."""
    install()
    provider = LocalProvider(folder, redirect_uris, users)
    try:
        provider.start()
        yield provider
    finally:
        provider.stop()
