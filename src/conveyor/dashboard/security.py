"""Who may see the dashboard and act on it.

- Bound to a loopback address (the default, 127.0.0.1) it needs no login, but answers only
  requests whose ``Host`` names the loopback (so a web page on another site cannot reach it
  through a rebound DNS name).
- Any other address is refused unless a login is configured in the environment:
  ``CONVEYOR_DASHBOARD_TOKEN`` (``Authorization: Bearer <token>``, or the token entered once on
  the login page, kept in an HttpOnly cookie) or ``CONVEYOR_DASHBOARD_USER`` and
  ``CONVEYOR_DASHBOARD_PASSWORD`` (HTTP basic auth). Every page, stream and ``/metrics`` then
  needs it.
- Every action is a POST carrying a CSRF token that must match the one in the visitor's cookie
  (double submit), from a page of the same origin.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import ConfigurationError

TOKEN_ENV = "CONVEYOR_DASHBOARD_TOKEN"
USER_ENV, PASSWORD_ENV = "CONVEYOR_DASHBOARD_USER", "CONVEYOR_DASHBOARD_PASSWORD"
SESSION_COOKIE, CSRF_COOKIE = "conveyor_session", "conveyor_csrf"
CSRF_FIELD = "csrf"
_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ::1."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Auth:
    """The configured login (none, a token, or a user and password)."""

    token: str = ""
    user: str = ""
    password: str = ""

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Auth:
        token = environ.get(TOKEN_ENV, "")
        user, password = environ.get(USER_ENV, ""), environ.get(PASSWORD_ENV, "")
        if bool(user) != bool(password):
            raise ConfigurationError(f"set both {USER_ENV} and {PASSWORD_ENV}, or neither")
        return cls(token, user, password)

    @property
    def enabled(self) -> bool:
        return bool(self.token or self.user)

    def session_value(self) -> str:
        """The cookie a token login leaves: a digest of the token, never the token itself."""
        return hashlib.sha256(b"conveyor-dashboard:" + self.token.encode()).hexdigest()

    def allows(self, authorization: str, session: str) -> bool:
        """Whether a request with these ``Authorization`` header and session cookie may in."""
        if not self.enabled:
            return True
        scheme, _, value = authorization.partition(" ")
        if self.token:
            if scheme.lower() == "bearer" and _same(value.strip(), self.token):
                return True
            if session and _same(session, self.session_value()):
                return True
        if self.user and scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value.strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            return _same(user, self.user) & _same(password, self.password)
        return False

    def token_matches(self, given: str) -> bool:
        return bool(self.token) and _same(given, self.token)


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def check_bind(host: str, auth: Auth) -> None:
    """Refuse to listen beyond the loopback without a login."""
    if not is_loopback(host) and not auth.enabled:
        raise ConfigurationError(
            f"refusing to serve the dashboard on {host} without authentication: set"
            f" {TOKEN_ENV}, or {USER_ENV} and {PASSWORD_ENV}, or bind 127.0.0.1")


def host_allowed(host_header: str, auth: Auth) -> bool:
    """Without a login only loopback ``Host`` names are answered (DNS rebinding)."""
    if auth.enabled:
        return True
    name = host_header.rsplit(":", 1)[0] if not host_header.endswith("]") else host_header
    if host_header.startswith("["):
        name = host_header[: host_header.find("]") + 1]
    return name in _LOOPBACK_NAMES or is_loopback(name)


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_ok(cookie: str, submitted: str) -> bool:
    return bool(cookie) and bool(submitted) and _same(cookie, submitted)
