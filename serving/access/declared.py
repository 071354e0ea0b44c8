"""Who may call each endpoint and open each page, declared next to its definition: `@endpoint(roles)` on a method
of the BentoML service (its path is `/` + the method's name, as BentoML routes it), `page(path, roles)` by the web
app for each of its pages (`serving.web.kit.page` does it with the page's own check). One registry holds them; the
door (`serving.access.door`) reads it and, with authentication required, refuses every path that is not in it.

Public paths hold no tenant's data: BentoML's health, metrics and OpenAPI routes, the web app's sign-in and its
static files. Everything else is closed until declared.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from serving.access.principals import ROLES, Principal

#: Where the web app is mounted (serving/api/service.py) and the cookie its sign-in sets.
PAGE_ROOT, SESSION_COOKIE = "/app", "arrears_session"
#: BentoML's own routes (health, metrics, the OpenAPI document and its viewer), open to anyone.
SYSTEM_PATHS = frozenset({"/", "/docs.json", "/schema.json", "/livez", "/healthz", "/readyz", "/metrics"})
SYSTEM_PREFIXES = ("/static_content/", "/assets/")
#: The web app's pages open to anyone (signing in and out, single sign-on's start and return) and its static files.
PUBLIC_PAGES = frozenset({PAGE_ROOT, PAGE_ROOT + "/", PAGE_ROOT + "/signin", PAGE_ROOT + "/signout",
                          PAGE_ROOT + "/sso/login", PAGE_ROOT + "/sso/callback"})
STATIC_PREFIX = PAGE_ROOT + "/static/"

Kind = Literal["endpoint", "page"]
F = TypeVar("F", bound=Callable)


@dataclass(frozen=True)
class Declaration:
    path: str
    kind: Kind
    roles: tuple[str, ...]


_DECLARED: dict[str, Declaration] = {}


def declare(path: str, kind: Kind, roles: tuple[str, ...]) -> Declaration:
    """Record who may use `path`. Declaring a path again with other roles is an error (two definitions)."""
    unknown = set(roles) - set(ROLES)
    if not roles or unknown:
        raise ValueError(f"{path} must name at least one role of {', '.join(ROLES)}; unknown: {sorted(unknown)}")
    declaration = Declaration(path, kind, tuple(roles))
    if _DECLARED.setdefault(path, declaration) != declaration:
        raise ValueError(f"{path} is declared twice, with different roles: {_DECLARED[path]} and {declaration}")
    return declaration


def endpoint(*roles: str) -> Callable[[F], F]:
    """Declare the roles that may call a service method (put it under `@bentoml.api`)."""
    def declaring(function: F) -> F:
        declare("/" + function.__name__, "endpoint", roles)
        return function

    return declaring


def page(path: str, *roles: str) -> Declaration:
    """Declare the roles that may open a web page (`path` below the app's root, e.g. "/worklist")."""
    return declare(PAGE_ROOT + path, "page", roles)


def declaration(path: str) -> Declaration | None:
    return _DECLARED.get(path)


def declared(kind: Kind) -> dict[str, tuple[str, ...]]:
    """Every declared path of a kind and its roles."""
    return {d.path: d.roles for d in _DECLARED.values() if d.kind == kind}


def is_public(path: str) -> bool:
    return (path in SYSTEM_PATHS or path in PUBLIC_PAGES or path.startswith(SYSTEM_PREFIXES)
            or path.startswith(STATIC_PREFIX))


def is_page(path: str) -> bool:
    return path == PAGE_ROOT or path.startswith(PAGE_ROOT + "/")


def may_use(principal: Principal, path: str) -> bool:
    """Whether the principal's role may call or open `path` (never, when it is not declared)."""
    found = _DECLARED.get(path)
    return found is not None and principal.role in found.roles
