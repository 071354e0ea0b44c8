"""JWT bearer tokens from a real OpenID provider (oidc-provider under Node.js, tests/support/oidc.py), checked by
`serving.access.oidc` as the service's door checks them: a user's groups give the role and patches, the provider's
key rotation is followed (a new key id makes the service fetch the keys again, once), and a token signed by a key the
provider never published, for another audience, or expired is refused."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from joserfc import jws, jwt
from joserfc.jwk import RSAKey

from serving.access import oidc
from serving.settings import get_settings
from tests.support.homes import isolated_home
from tests.support.oidc import AUDIENCE, SHORT_CLIENT, WEB_CLIENT, local_provider, new_key

USERS = {"ann": {"password": "ann-pw", "email": "ann@example.org", "groups": ["income-officers-north-1", "staff"]},
         "bea": {"password": "bea-pw", "email": "bea@example.org", "groups": ["staff"]},
         "cat": {"password": "cat-pw", "email": "cat@example.org",
                 "groups": ["income-officers-north-2", "income-officers-north-1"]}}
MAPPING = {"rules": [{"group": "arrears-admins", "role": "admin"},
                     {"group": "income-officers-north-1", "role": "officer", "patches": ["North-1"]},
                     {"group": "income-officers-north-2", "role": "officer", "patches": ["North-2"]}]}


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("oidc")
    (root / "groups.yaml").write_text(json.dumps(MAPPING))  # JSON is YAML
    with local_provider(root / "provider", ["http://127.0.0.1:9/app/sso/callback"], USERS) as running:
        variables = {"ARREARS_OIDC_ISSUER": running.url, "ARREARS_OIDC_CLIENT_ID": WEB_CLIENT,
                     "ARREARS_OIDC_CLIENT_SECRET": running.secret, "ARREARS_OIDC_AUDIENCE": AUDIENCE,
                     "ARREARS_OIDC_GROUPS": str(root / "groups.yaml"), "ARREARS_OIDC_LEEWAY_SECONDS": "0"}
        with isolated_home(root / "home", **variables):
            oidc.forget_provider()
            yield running
            oidc.forget_provider()


def test_a_users_groups_give_the_role_and_patches(provider) -> None:
    settings = get_settings()
    ann = oidc.principal_from_jwt(provider.api_token("ann", "ann-pw"), settings)
    assert (ann.name, ann.role, ann.patches) == ("ann", "officer", ("North-1",))
    cat = oidc.principal_from_jwt(provider.api_token("cat", "cat-pw"), settings)
    assert (cat.role, cat.patches) == ("officer", ("North-1", "North-2"))  # both officer groups' patches
    with pytest.raises(oidc.InvalidToken) as refused:
        oidc.principal_from_jwt(provider.api_token("bea", "bea-pw"), settings)
    assert "bea is not in any group" in str(refused.value)
    assert "arrears-admins, income-officers-north-1, income-officers-north-2" in str(refused.value)


def test_rotated_keys_are_fetched_again_and_unknown_keys_refused(provider) -> None:
    settings = get_settings()
    before = oidc.provider_keys(settings).fetches
    assert oidc.principal_from_jwt(provider.api_token("ann", "ann-pw"), settings).name == "ann"
    fetched = oidc.provider_keys(settings).fetches
    assert fetched - before <= 1  # the set is kept, not fetched per token
    assert oidc.principal_from_jwt(provider.api_token("ann", "ann-pw"), settings).name == "ann"
    assert oidc.provider_keys(settings).fetches == fetched

    new_kid = provider.rotate()  # the provider now signs with a key the service has not seen
    token = provider.api_token("ann", "ann-pw")
    assert jws.extract_compact(token.encode()).headers()["kid"] == new_kid
    assert oidc.principal_from_jwt(token, settings).name == "ann"
    assert oidc.provider_keys(settings).fetches == fetched + 1

    # a token the provider never signed: same claims, signed by a key of our own under an unpublished key id
    intruder = RSAKey.import_key(new_key("intruder"))
    claims = {"iss": provider.url, "aud": AUDIENCE, "sub": "ann", "preferred_username": "ann",
              "groups": ["arrears-admins"], "exp": int(time.time()) + 600, "iat": int(time.time())}
    forged = jwt.encode({"alg": "RS256", "kid": "intruder"}, claims, intruder)
    for _ in range(3):
        with pytest.raises(oidc.InvalidToken, match="a key the provider does not publish"):
            oidc.principal_from_jwt(forged, settings)
    assert oidc.provider_keys(settings).fetches == fetched + 2  # one fetch for the unknown id, not one per token
    # ... nor under the provider's own key id
    forged = jwt.encode({"alg": "RS256", "kid": new_kid}, claims, intruder)
    with pytest.raises(oidc.InvalidToken, match="not valid here"):
        oidc.principal_from_jwt(forged, settings)


def test_other_audiences_and_expired_tokens_are_refused(provider) -> None:
    settings = get_settings()
    other = settings.model_copy(update={"oidc_audience": "api://someone-else"})
    with pytest.raises(oidc.InvalidToken, match="for audience api://someone-else"):
        oidc.principal_from_jwt(provider.api_token("ann", "ann-pw"), other)
    short = provider.api_token("ann", "ann-pw", client=SHORT_CLIENT)  # lives two seconds
    claims = jwt.decode(short, oidc.provider_keys(settings).key_set(provider.keys[0]["kid"])).claims
    time.sleep(max(claims["exp"] - time.time(), 0) + 1.1)
    with pytest.raises(oidc.InvalidToken, match="has expired"):
        oidc.principal_from_jwt(short, settings)
    assert not oidc.looks_like_jwt("arr_abc.def.ghi") and oidc.looks_like_jwt(short)


def test_the_shipped_mapping_lets_nobody_in() -> None:
    mapping = oidc.load_mapping(oidc.DEFAULT_GROUPS_FILE)
    with pytest.raises(oidc.NotMapped, match="none is mapped yet"):
        mapping.principal({"preferred_username": "dee", "groups": ["arrears-admins"]})


def test_a_wrong_mapping_names_its_rule(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text("rules:\n  - group: g\n    role: officer\n")
    with pytest.raises(ValueError, match="rule 1 \\(g\\): officers and supervisors are given patches"):
        oidc.load_mapping(tmp_path / "m.yaml")
