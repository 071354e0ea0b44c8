"""Single sign-on through the landlord's OpenID Connect provider (Entra ID, Google, Okta, Keycloak…): the web app's
sign-in by the authorization code flow with PKCE (`serving.web.sso`), and JWT bearer tokens from the same provider
for the API (`principal_from_jwt`, called by the door for a bearer token that is a JWT).

Everything about the provider is found from its issuer (`ARREARS_OIDC_ISSUER`) through its discovery document
(`/.well-known/openid-configuration`): its endpoints and where it publishes its signing keys (`jwks_uri`). A token is
trusted only when its signature verifies against one of those keys, its issuer is the configured one, its audience
is ours (`ARREARS_OIDC_AUDIENCE` for API tokens, the client id for ID tokens) and it has not expired. The key set is
fetched once and kept; a token signed with a key id the set does not hold makes the service fetch the set again
(the provider rotated its keys), once per unknown key id, so a forged key id cannot make it fetch on every request.

Roles and patches come only from the person's groups (or roles) claim, through the mapping file
(`ARREARS_OIDC_GROUPS`, default `serving/access/oidc.yaml`): a person in no mapped group is refused, told which
groups would let them in. Multi-factor authentication, passwords and leavers are the provider's business: someone
removed from a group is refused at their next sign-in, and their API tokens stop at their expiry.

Tokens are never logged or stored; a principal's name is the person's username or email (staff, never tenants).
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml
from joserfc import jws, jwt
from joserfc.errors import ExpiredTokenError, JoseError
from joserfc.jwk import KeySet

from serving.access.principals import PATCH_ROLES, ROLES, TOKEN_PREFIX, Principal
from serving.settings import ServingSettings

#: The shipped mapping (every rule commented out: nobody is let in until the landlord says who).
DEFAULT_GROUPS_FILE = Path(__file__).with_name("oidc.yaml")
#: Signature algorithms accepted (asymmetric only: a provider's public keys, never a shared secret).
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
#: A key set older than this is fetched again, so a key the provider withdrew stops being trusted.
KEYS_MAX_AGE_SECONDS = 3600.0
#: How long an unknown key id is remembered as unknown after a fetch did not find it.
UNKNOWN_KID_SECONDS = 300.0
HTTP_TIMEOUT = 10.0


class InvalidToken(Exception):
    """A bearer or ID token that is not to be trusted (expired, wrong issuer or audience, bad signature, unknown
    key); the message says what to do, without the token."""


class NotMapped(PermissionError):
    """A person the provider vouches for whose groups give no role here; the message names the groups that would."""


@dataclass(frozen=True)
class Rule:
    group: str
    role: str
    patches: tuple[str, ...] = ()


@dataclass(frozen=True)
class Mapping:
    """The groups → role and patches mapping: the first rule (top to bottom) a person's groups match gives the role;
    every matching rule of that role adds its patches."""
    rules: tuple[Rule, ...]
    groups_claim: str = "groups"
    name_claims: tuple[str, ...] = ("preferred_username", "email", "upn", "name")

    def principal(self, claims: dict) -> Principal:
        name = next((str(claims[c]).strip() for c in self.name_claims if str(claims.get(c) or "").strip()), "")
        if not name:
            raise NotMapped(f"The provider's token names nobody (none of {', '.join(self.name_claims)}): "
                            "ask your administrator to release one of these claims to this service")
        given = claims.get(self.groups_claim) or []
        groups = {given} if isinstance(given, str) else {str(g) for g in given}
        matched = [rule for rule in self.rules if rule.group in groups]
        if not matched:
            needed = ", ".join(sorted({rule.group for rule in self.rules})) or "none is mapped yet"
            raise NotMapped(f"{name} is not in any group that may use this service. Ask to be added to one of these "
                            f"groups: {needed}")
        role = matched[0].role
        if role not in PATCH_ROLES:
            return Principal(name[:100], role)
        patches = sorted({p for rule in matched if rule.role == role for p in rule.patches})
        return Principal(name[:100], role, tuple(patches))


def load_mapping(path: Path) -> Mapping:
    """Read and check a mapping file (an error names the rule that is wrong)."""
    raw = yaml.safe_load(Path(path).read_text()) or {}
    rules = []
    for i, rule in enumerate(raw.get("rules") or []):
        group, role, patches = str(rule.get("group", "")), rule.get("role"), tuple(rule.get("patches") or ())
        if not group or role not in ROLES:
            raise ValueError(f"{path}: rule {i + 1} needs a group and a role (one of {', '.join(ROLES)})")
        if (role in PATCH_ROLES) != bool(patches):
            raise ValueError(f"{path}: rule {i + 1} ({group}): officers and supervisors are given patches, other "
                             "roles none")
        rules.append(Rule(group, role, tuple(str(p) for p in patches)))
    return Mapping(tuple(rules), str(raw.get("groups_claim") or "groups"),
                   tuple(raw.get("name_claims") or Mapping.name_claims))


def configured(settings: ServingSettings) -> bool:
    return bool(settings.oidc_issuer and settings.oidc_client_id)


def mapping(settings: ServingSettings) -> Mapping:
    return load_mapping(settings.oidc_groups or DEFAULT_GROUPS_FILE)


def looks_like_jwt(token: str) -> bool:
    """Three dot-separated parts, and not one of our own static tokens."""
    return not token.startswith(TOKEN_PREFIX) and token.count(".") == 2


# -- the provider: discovery and keys, cached per process -----------------------------------------------------------
_lock = threading.Lock()
_discovered: dict[str, dict] = {}


def discovery(issuer: str) -> dict:
    """The provider's discovery document (fetched once per process)."""
    with _lock:
        found = _discovered.get(issuer)
    if found is None:
        answer = httpx.get(issuer.rstrip("/") + "/.well-known/openid-configuration", timeout=HTTP_TIMEOUT)
        answer.raise_for_status()
        found = answer.json()
        if found.get("issuer") != issuer:
            raise InvalidToken(f"The provider at {issuer} calls itself {found.get('issuer')!r}: set "
                               "ARREARS_OIDC_ISSUER to exactly its issuer")
        with _lock:
            _discovered[issuer] = found
    return found


class ProviderKeys:
    """The provider's published signing keys: fetched when first needed, again when older than
    `KEYS_MAX_AGE_SECONDS`, and again when a token names a key id the set does not hold (once per such id)."""

    def __init__(self, jwks_uri: str) -> None:
        self.jwks_uri = jwks_uri
        self.keys: KeySet | None = None
        self.fetched_at = 0.0
        self.fetches = 0
        self._unknown: dict[str, float] = {}

    def _fetch(self) -> None:
        answer = httpx.get(self.jwks_uri, timeout=HTTP_TIMEOUT)
        answer.raise_for_status()
        self.keys, self.fetched_at = KeySet.import_key_set(answer.json()), time.monotonic()
        self.fetches += 1

    def _holds(self, kid: str | None) -> bool:
        return self.keys is not None and any(key.kid == kid for key in self.keys.keys)

    def key_set(self, kid: str | None) -> KeySet:
        with _lock:
            now = time.monotonic()
            if self.keys is None or now - self.fetched_at > KEYS_MAX_AGE_SECONDS:
                self._fetch()
            elif not self._holds(kid) and now - self._unknown.get(str(kid), -UNKNOWN_KID_SECONDS) \
                    >= UNKNOWN_KID_SECONDS:
                self._fetch()  # a key the set does not hold: the provider may have rotated
                if not self._holds(kid):
                    if len(self._unknown) > 1000:
                        self._unknown.clear()
                    self._unknown[str(kid)] = now
            if not self._holds(kid):
                raise InvalidToken("The token is signed with a key the provider does not publish: get a new token "
                                   "from the provider")
            return self.keys


_keys: dict[str, ProviderKeys] = {}


def provider_keys(settings: ServingSettings) -> ProviderKeys:
    uri = discovery(settings.oidc_issuer)["jwks_uri"]
    with _lock:
        return _keys.setdefault(uri, ProviderKeys(uri))


def forget_provider() -> None:
    """Forget every cached discovery document and key set (tests; a changed issuer)."""
    with _lock:
        _discovered.clear()
        _keys.clear()


# -- checking tokens ------------------------------------------------------------------------------------------------
def verified_claims(token: str, settings: ServingSettings, audience: str, **expected) -> dict:
    """The claims of `token` once its signature (against the provider's keys), issuer, audience and expiry hold;
    `expected`: other claims' required values (an ID token's nonce). Raises InvalidToken."""
    try:
        header = jws.extract_compact(token.encode()).headers()
    except (JoseError, ValueError) as exc:
        raise InvalidToken("The bearer token is not a well-formed JWT: send the provider's access token") from exc
    if header.get("alg") not in ALGORITHMS:
        raise InvalidToken(f"The token is signed with {header.get('alg')!r}: this service accepts "
                           f"{', '.join(ALGORITHMS)} from the provider")
    keys = provider_keys(settings).key_set(header.get("kid"))
    try:
        decoded = jwt.decode(token, keys, algorithms=list(ALGORITHMS))
        jwt.JWTClaimsRegistry(
            leeway=int(settings.oidc_leeway_seconds),
            iss={"essential": True, "value": settings.oidc_issuer}, aud={"essential": True, "value": audience},
            exp={"essential": True}, **{name: {"essential": True, "value": value} for name, value in expected.items()},
        ).validate(decoded.claims)
    except ExpiredTokenError as exc:
        raise InvalidToken(f"The token has expired: get a new one from {settings.oidc_issuer}") from exc
    except (JoseError, ValueError) as exc:
        raise InvalidToken(f"The token is not valid here ({type(exc).__name__}): it must come from "
                           f"{settings.oidc_issuer} for audience {audience}") from exc
    return decoded.claims


def api_audience(settings: ServingSettings) -> str:
    return settings.oidc_audience or str(settings.oidc_client_id)


def principal_from_jwt(token: str, settings: ServingSettings) -> Principal:
    """The principal of an API bearer token issued by the provider. Raises InvalidToken (a 401) for a token not to
    be trusted, NotMapped (also a 401: the provider's groups give no role here) for a person not mapped."""
    claims = verified_claims(token, settings, api_audience(settings))
    try:
        return mapping(settings).principal(claims)
    except NotMapped as exc:
        raise InvalidToken(str(exc)) from exc


# -- the sign-in's pending state: a signed cookie between the redirect and the callback ---------------------------
def sign(value: str, settings: ServingSettings) -> str:
    """`value` with an HMAC under a key derived from the client secret (what the callback's cookie carries)."""
    return value + "." + _mac(value, settings)


def unsign(signed: str, settings: ServingSettings) -> str | None:
    value, _, mac = signed.rpartition(".")
    return value if value and hmac.compare_digest(mac, _mac(value, settings)) else None


def _mac(value: str, settings: ServingSettings) -> str:
    secret = settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret else ""
    key = hashlib.sha256(b"arrears-sso-state:" + secret.encode()).digest()
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()
