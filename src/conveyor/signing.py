"""Optional message signing: HMAC-SHA256 over each message body, with key rotation.

With ``signing_keys`` set (a list; the first key signs, every key listed is accepted, so keys
rotate by putting the new one first and dropping the old one once its messages are gone), every
message a producer sends is framed as::

    b"CVS1" | key id (4 bytes) | signed at (8 bytes, milliseconds) | HMAC (32 bytes) | body

and a worker refuses (dead-letters, with the reason) a message that is unsigned, signed with an
unknown key, altered, or older than ``signing_max_age`` seconds. The key id is the first four
bytes of the key's SHA-256, so no key is ever sent. The HMAC covers the key id, the time and
the body; it is checked before the body is decoded.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Sequence

from .errors import ConfigurationError, SignatureError

MAGIC = b"CVS1"
_HEAD = struct.Struct(">4s4sQ32s")  # magic, key id, signed at (ms), HMAC


def key_id(key: bytes) -> bytes:
    """The four bytes that name a key in a signed message."""
    return hashlib.sha256(key).digest()[:4]


class Signer:
    """Signs with the first of ``keys`` and verifies with any of them."""

    def __init__(self, keys: Sequence[str | bytes], max_age: float | None) -> None:
        if not keys:
            raise ConfigurationError("signing needs at least one key")
        raw = [k.encode() if isinstance(k, str) else bytes(k) for k in keys]
        if any(len(k) < 16 for k in raw):
            raise ConfigurationError("signing keys must be at least 16 bytes long")
        self._signing = raw[0]
        self._keys = {key_id(k): k for k in raw}
        self.max_age = max_age

    def sign(self, body: bytes, now: float) -> bytes:
        kid = key_id(self._signing)
        stamp = int(now * 1000)
        mac = _mac(self._signing, kid, stamp, body)
        return _HEAD.pack(MAGIC, kid, stamp, mac) + body

    def verify(self, framed: bytes, now: float) -> bytes:
        """The body of a message signed by one of the keys; SignatureError otherwise."""
        if len(framed) < _HEAD.size or not framed.startswith(MAGIC):
            raise SignatureError("unsigned message refused (this app requires signatures)")
        _, kid, stamp, mac = _HEAD.unpack_from(framed)
        body = framed[_HEAD.size:]
        key = self._keys.get(kid)
        if key is None:
            raise SignatureError(f"message signed with an unknown key (id {kid.hex()})")
        if not hmac.compare_digest(mac, _mac(key, kid, stamp, body)):
            raise SignatureError("message signature does not match: altered or forged")
        age = now - stamp / 1000
        if self.max_age is not None and age > self.max_age:
            raise SignatureError(f"signed message expired: {age:.0f}s old"
                                 f" (signing_max_age {self.max_age:.0f}s)")
        return body


def _mac(key: bytes, kid: bytes, stamp: int, body: bytes) -> bytes:
    return hmac.new(key, kid + stamp.to_bytes(8, "big") + body, hashlib.sha256).digest()
