"""API keys: off when none are configured; otherwise every request names a key that maps to a user and role.

Keys come from ``JOBHANDLE_API_KEYS`` (``key:user[:role]`` entries separated by commas) and/or the file
``JOBHANDLE_API_KEYS_FILE`` (one entry per line; blank lines and ``#`` comments are ignored). The role is
``user`` (the default), ``admin`` or ``viewer``. A request sends ``Authorization: Bearer <key>``; the dashboard
signs in with a key once and keeps a session cookie (jobhandle.web.session).

Users see and act on their own jobs and schedules only; anything else does not exist for them (404, never
403). Admins see and act on everything. Viewers see everything and change nothing: every request that could
change state (any method but GET, HEAD and OPTIONS) is refused with 403. With authentication off, every caller
is an admin.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import Request

from ..config import Settings
from ..errors import InvalidParameterError
from .errors import AuthenticationError, PermissionDeniedError

ROLES = ("user", "admin", "viewer")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling. ``user_id`` is None when authentication is off (then ``admin`` is True).

    ``admin``: sees every user's jobs (the admin and viewer roles); ``may_act``: may change anything at all
    (every role but viewer)."""

    user_id: str | None
    admin: bool
    may_act: bool = True

    @property
    def role(self) -> str:
        return "viewer" if not self.may_act else "admin" if self.admin else "user"

    def may_see(self, owner: str) -> bool:
        """Whether a job or schedule of user ``owner`` exists for this caller."""
        return self.admin or owner == self.user_id

    def scope(self, requested: str | None) -> str | None:
        """The user a list or count is limited to: the caller's own unless admin (then what was asked)."""
        return requested if self.admin else self.user_id

    def owner_for_submit(self, requested: str | None) -> str | None:
        """The ``user_id`` a new job gets: the key's user; admins (and everyone without auth) may name one."""
        if self.admin:
            return requested
        if requested is not None and requested != self.user_id:
            raise PermissionDeniedError(f"this API key submits as user {self.user_id!r}, not {requested!r}",
                                        user_id=requested)
        return self.user_id

    def require_admin(self, what: str) -> None:
        if not self.admin:
            raise PermissionDeniedError(f"{what} needs an admin API key")

    def require_may_act(self, method: str) -> None:
        """Refuse a request that could change state from a read-only (viewer) key."""
        if not self.may_act and method.upper() not in SAFE_METHODS:
            raise PermissionDeniedError(f"user {self.user_id!r} has a read-only (viewer) key: {method} is refused")


ANONYMOUS_ADMIN = Principal(user_id=None, admin=True)


@dataclass(frozen=True, slots=True)
class ApiKey:
    secret: bytes
    principal: Principal


def parse_entry(entry: str, where: str) -> ApiKey:
    """``key:user[:role]`` -> ApiKey; InvalidParameterError saying where the bad entry was."""
    parts = [p.strip() for p in entry.split(":")]
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise InvalidParameterError(f"{where}: API key entries look like key:user or key:user:role")
    role = parts[2].lower() if len(parts) == 3 else "user"
    if role not in ROLES:
        raise InvalidParameterError(f"{where}: unknown role {parts[2]!r}; use user, admin or viewer")
    return ApiKey(parts[0].encode(), Principal(user_id=parts[1], admin=role != "user", may_act=role != "viewer"))


def load_keys(settings: Settings) -> list[ApiKey]:
    """Every configured key (environment, then file); duplicates are refused."""
    keys: list[ApiKey] = []
    if settings.api_keys is not None:
        entries = [e for e in settings.api_keys.get_secret_value().split(",") if e.strip()]
        keys += [parse_entry(e, f"JOBHANDLE_API_KEYS entry {n}") for n, e in enumerate(entries, 1)]
    if settings.api_keys_file is not None:
        try:
            lines = settings.api_keys_file.read_text().splitlines()
        except OSError as exc:
            raise InvalidParameterError(f"cannot read API keys file {settings.api_keys_file}: {exc}") from None
        for number, line in enumerate(lines, 1):
            text = line.split("#", 1)[0].strip()
            if text:
                keys.append(parse_entry(text, f"{settings.api_keys_file} line {number}"))
    if len({k.secret for k in keys}) != len(keys):
        raise InvalidParameterError("the same API key is configured twice")
    return keys


class Authenticator:
    """Maps a request's bearer key to its Principal, comparing against every key in constant time."""

    def __init__(self, keys: list[ApiKey]) -> None:
        self.keys = keys

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    def principal(self, authorization: str | None) -> Principal:
        if not self.keys:
            return ANONYMOUS_ADMIN
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError("send an API key as 'Authorization: Bearer <key>'")
        found = self.find(token.strip())
        if found is None:
            raise AuthenticationError("unknown API key")
        return found

    def find(self, key: str) -> Principal | None:
        """The principal of ``key``, or None when no configured key is it."""
        given = key.encode()
        found: Principal | None = None
        for configured in self.keys:  # no early exit: the time taken does not depend on which key matched
            if hmac.compare_digest(given, configured.secret):
                found = configured.principal
        return found


async def authenticate(request: Request) -> Principal:
    """FastAPI dependency: the caller of this request (401 in the error shape when the key is missing/wrong).

    Async on purpose: FastAPI would run a plain ``def`` dependency in its thread pool, a hop per request."""
    authenticator: Authenticator = request.app.state.jobhandle.auth
    principal = authenticator.principal(request.headers.get("authorization"))
    principal.require_may_act(request.method)
    request.state.principal = principal
    return principal
