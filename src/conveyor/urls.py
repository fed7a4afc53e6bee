"""Parsing store URLs and masking their secrets, so no password reaches a log, repr or page."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def mask_url(url: str) -> str:
    """Return ``url`` with its password (if any) replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def scheme_of(url: str) -> str:
    """The URL's scheme in lower case (``sqlite``, ``redis``, ``memory`` ...)."""
    return urlsplit(url).scheme.lower()
