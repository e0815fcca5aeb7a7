"""Dashboard sessions and CSRF tokens.

Every visitor holds one session cookie (``jh_session``: HttpOnly, SameSite=Strict, Secure when served over
HTTPS). It is ``<session id>.<expiry>.<key tag>.<mac>``: a random id, a Unix time, the tag of the API key it
signed in with (``-`` when authentication is off or nobody signed in yet) and an HMAC over all three with the
server's secret (``JOBHANDLE_SESSION_SECRET``). The key itself is never in the cookie: its tag is an HMAC of
the key, matched against the configured keys on every request, so a key removed from the configuration ends
its sessions at once.

The CSRF token of a session is an HMAC of its id. Pages carry it in a ``<meta>`` element; every state-changing
request sends it back (``X-CSRF-Token`` header or ``csrf`` form field) and is refused without it: a cross-site
page can neither read the token nor, SameSite=Strict, send the cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from ..api.auth import ANONYMOUS_ADMIN, Authenticator, Principal

COOKIE = "jh_session"
NO_KEY = "-"
TAG_BYTES = 16


@dataclass(frozen=True, slots=True)
class Session:
    """A verified session: its id, when it ends, and who is signed in (None: nobody yet)."""

    session_id: str
    expires: int
    principal: Principal | None


class Sessions:
    """Issues and verifies session cookies and CSRF tokens with one secret."""

    def __init__(self, secret: bytes, authenticator: Authenticator, lifetime_seconds: float) -> None:
        self._secret = secret
        self.auth = authenticator
        self.lifetime = int(lifetime_seconds)
        self._tags = {self._tag(key.secret): key.principal for key in authenticator.keys}

    @property
    def required(self) -> bool:
        """Whether a visitor must sign in with an API key (keys are configured)."""
        return self.auth.enabled

    def _mac(self, text: str) -> str:
        return hmac.new(self._secret, text.encode(), hashlib.sha256).hexdigest()

    def _tag(self, key: bytes) -> str:
        return hmac.new(self._secret, b"key:" + key, hashlib.sha256).hexdigest()[:TAG_BYTES * 2]

    def issue(self, key: str | None = None) -> str:
        """A new cookie value: anonymous, or signed in with ``key`` (which the caller has checked)."""
        tag = NO_KEY if key is None else self._tag(key.encode())
        body = f"{secrets.token_urlsafe(18)}.{int(time.time()) + self.lifetime}.{tag}"
        return f"{body}.{self._mac(body)}"

    def read(self, cookie: str | None) -> Session | None:
        """The session a cookie value holds; None when it is missing, forged, expired or its key is gone."""
        if not cookie or cookie.count(".") != 3:
            return None
        session_id, expires_text, tag, mac = cookie.split(".")
        if not hmac.compare_digest(mac, self._mac(f"{session_id}.{expires_text}.{tag}")):
            return None
        try:
            expires = int(expires_text)
        except ValueError:
            return None
        if expires <= time.time():
            return None
        if not self.required:
            return Session(session_id, expires, ANONYMOUS_ADMIN)
        if tag == NO_KEY:
            return Session(session_id, expires, None)
        principal = self._tags.get(tag)
        return None if principal is None else Session(session_id, expires, principal)

    def csrf_token(self, session: Session) -> str:
        return self._mac(f"csrf:{session.session_id}")

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(token or "", self.csrf_token(session))
