"""Parsing store URLs and masking their secrets, so no password reaches a log, repr or page."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

# user:password@ in the authority (which may list several host:port pairs, as Sentinel URLs do)
_USERINFO = re.compile(r"^(?P<scheme>[^:/?#]+://)(?P<user>[^:/?#@]*):[^@/?#]*@")
# password-like query parameters (password=, sentinel_password=, ...)
_QUERY_SECRET = re.compile(r"(?P<key>[?&][^=&#]*password=)[^&#]*", re.IGNORECASE)


def mask_url(url: str) -> str:
    """Return ``url`` with its password and any ``...password=`` query value as ``***``."""
    masked = _USERINFO.sub(r"\g<scheme>\g<user>:***@", url, count=1)
    return _QUERY_SECRET.sub(r"\g<key>***", masked)


def scheme_of(url: str) -> str:
    """The URL's scheme in lower case (``sqlite``, ``redis``, ``memory`` ...)."""
    return urlsplit(url).scheme.lower()
