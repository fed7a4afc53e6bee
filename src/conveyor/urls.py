"""Parsing store URLs and masking their secrets, so no password reaches a log, repr or page."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

# password-like query parameters (password=, sentinel_password=, ...)
_QUERY_SECRET = re.compile(r"(?P<key>[?&][^=&#]*password=)[^&#]*", re.IGNORECASE)


def mask_url(url: str) -> str:
    """Return ``url`` with its password and any ``...password=`` query value as ``***``.

    Copes with authorities listing several hosts (Sentinel) and with an unescaped ``@`` in
    the password (the last ``@`` of the authority ends the user part).
    """
    scheme, sep, rest = url.partition("://")
    if sep:
        cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
        userinfo, at, hosts = rest[:cut].rpartition("@")
        if at and ":" in userinfo:
            rest = f"{userinfo.split(':', 1)[0]}:***@{hosts}{rest[cut:]}"
        url = f"{scheme}{sep}{rest}"
    return _QUERY_SECRET.sub(r"\g<key>***", url)


def scheme_of(url: str) -> str:
    """The URL's scheme in lower case (``sqlite``, ``redis``, ``memory`` ...)."""
    return urlsplit(url).scheme.lower()
