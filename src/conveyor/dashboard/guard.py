"""The ASGI middleware in front of every route: Host check, login, CSRF cookie, and headers
that keep pages from being framed or sniffed (see :mod:`conveyor.dashboard.security`)."""

from __future__ import annotations

from http.cookies import SimpleCookie
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .security import CSRF_COOKIE, SESSION_COOKIE, Auth, host_allowed, new_csrf_token

#: Reachable without a login: the login page itself and the static files it uses.
OPEN_PATHS = ("/login", "/static/")
_HEADERS = [(b"x-frame-options", b"DENY"), (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"same-origin"),
            (b"content-security-policy",
             b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self';"
             b" frame-ancestors 'none'; form-action 'self'")]


class Guard:
    """Refuses foreign Host names (without a login), asks for the login (with one), hands
    each visitor a CSRF cookie, and adds the security headers."""

    def __init__(self, app: ASGIApp, auth: Auth) -> None:
        self.app, self.auth = app, auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refused = self._refusal(scope, headers)
        if refused is not None:
            await refused(scope, receive, send)
            return
        cookies = _cookies(headers)
        csrf = cookies.get(CSRF_COOKIE) or ""
        fresh = not csrf
        if fresh:
            csrf = new_csrf_token()
        scope.setdefault("state", {})["csrf"] = csrf

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = list(_HEADERS)
                if fresh:
                    extra.append((b"set-cookie", f"{CSRF_COOKIE}={csrf}; Path=/; HttpOnly;"
                                                 " SameSite=Strict".encode()))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, sending)

    def _refusal(self, scope: Scope, headers: Headers) -> Response | None:
        if not host_allowed(headers.get("host", ""), self.auth):
            return PlainTextResponse("this dashboard answers only on the loopback address",
                                     400)
        path: str = scope["path"]
        if path.startswith(OPEN_PATHS) or not self.auth.enabled:
            return None
        session = _cookies(headers).get(SESSION_COOKIE, "")
        if self.auth.allows(headers.get("authorization", ""), session):
            return None
        if self.auth.token and "text/html" in headers.get("accept", ""):
            return RedirectResponse("/login", 303)
        challenge = {"www-authenticate": 'Basic realm="conveyor"'} if self.auth.user else {}
        return PlainTextResponse("authentication required", 401, headers=challenge)


def _cookies(headers: Headers) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except Exception:  # a malformed cookie header counts as none
        return {}
    found: dict[str, Any] = {k: v.value for k, v in jar.items()}
    return found
