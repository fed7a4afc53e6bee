"""The ``amqp://`` and ``amqps://`` URL: where RabbitMQ is, and how queues are declared.

::

    amqp://[user[:password]@]host[:port]/[vhost][?queue_type=quorum&prefix=NAME...]
    amqps://...     TLS; ``ca_certs``, ``certfile``, ``keyfile`` name PEM files

The path is the virtual host, percent-encoded as in Celery's URLs: ``amqp://h//`` and
``amqp://h/`` are the default vhost ``/``, ``amqp://h/shop`` the vhost ``shop``.

Query options: ``queue_type`` (``classic``, the default, or ``quorum``), ``prefix`` (put before
every queue and exchange name, so several applications can share a vhost), ``delivery_limit``
(quorum queues: RabbitMQ's own ``x-delivery-limit``; a message past it goes to the dead-letter
queue, never dropped), ``delay_queue_type`` (``quorum``, the default, or ``classic``: the type
of the delay level queues, see :mod:`.topology`), ``heartbeat`` (seconds), ``connect_timeout``
and ``confirm_timeout`` (seconds a publish waits for the broker's confirm),
``consumer_timeout`` (the server's ``consumer_timeout`` in seconds, 30 minutes unless
``rabbitmq.conf`` says otherwise, 0 when it is off: a worker warns about task time limits
longer than it, see :mod:`.timeouts`), and for ``amqps`` the TLS files above plus ``verify=no``
to skip checking the server's certificate (tests only).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from ...errors import ConfigurationError
from ...urls import mask_url

QUEUE_TYPES = ("classic", "quorum")
#: Delay level queues: quorum ones dead-letter at least once, classic ones at most once.
DELAY_QUEUE_TYPES = ("quorum", "classic")
_KNOWN = {"queue_type", "delay_queue_type", "prefix", "delivery_limit", "heartbeat",
          "connect_timeout", "confirm_timeout", "consumer_timeout", "ca_certs", "certfile",
          "keyfile", "verify"}


@dataclass(frozen=True)
class AmqpOptions:
    """A parsed URL: the connection target and how topology is declared."""

    url: str  # masked: safe to show
    host: str
    port: int
    user: str
    password: str
    vhost: str
    tls: bool
    queue_type: str = "classic"
    delay_queue_type: str = "quorum"
    prefix: str = ""
    delivery_limit: int | None = None
    heartbeat: int = 30
    connect_timeout: float = 5.0
    confirm_timeout: float = 30.0
    consumer_timeout: float = 1800.0  # the server's, as the URL states it (0: off)
    ca_certs: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    verify: bool = True

    @property
    def quorum(self) -> bool:
        return self.queue_type == "quorum"

    def connect_url(self) -> str:
        """The URL aio-pika connects to (holds the password: never log it)."""
        scheme = "amqps" if self.tls else "amqp"
        auth = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}@"
        return (f"{scheme}://{auth}{self.host}:{self.port}/{quote(self.vhost, safe='')}"
                f"?heartbeat={self.heartbeat}")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for ``amqps``, or None."""
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=self.ca_certs)
        if self.certfile:
            context.load_cert_chain(self.certfile, self.keyfile)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def parse(url: str, queue_type: str | None = None) -> AmqpOptions:
    """Parse ``url``; ConfigurationError names what is wrong (never the password)."""
    masked = mask_url(url)
    parts = urlsplit(url)
    if parts.scheme not in ("amqp", "amqps"):
        raise ConfigurationError(f"{masked}: not an amqp:// or amqps:// URL")
    query = dict(parse_qsl(parts.query))
    unknown = sorted(set(query) - _KNOWN)
    if unknown:
        raise ConfigurationError(f"{masked}: unknown option(s) {', '.join(unknown)}; known:"
                                 f" {', '.join(sorted(_KNOWN))}")
    kind = _choice(masked, "queue_type", query.get("queue_type", queue_type or "classic"),
                   QUEUE_TYPES)
    delay_kind = _choice(masked, "delay_queue_type", query.get("delay_queue_type", "quorum"),
                         DELAY_QUEUE_TYPES)
    tls = parts.scheme == "amqps"
    try:
        port = parts.port or (5671 if tls else 5672)
        return AmqpOptions(
            url=masked, host=parts.hostname or "localhost", port=port,
            user=unquote(parts.username or "guest"), password=unquote(parts.password or "guest"),
            vhost=_vhost(parts.path), tls=tls, queue_type=kind,
            delay_queue_type=delay_kind,
            prefix=query.get("prefix", ""),
            delivery_limit=_opt_int(query.get("delivery_limit")),
            heartbeat=int(query.get("heartbeat", 30)),
            connect_timeout=float(query.get("connect_timeout", 5.0)),
            confirm_timeout=float(query.get("confirm_timeout", 30.0)),
            consumer_timeout=_non_negative(query.get("consumer_timeout", 1800.0)),
            ca_certs=query.get("ca_certs"), certfile=query.get("certfile"),
            keyfile=query.get("keyfile"), verify=query.get("verify", "yes") not in ("no", "0"))
    except ValueError as exc:
        raise ConfigurationError(f"{masked}: {exc}") from None


def _choice(masked: str, name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigurationError(f"{masked}: {name} must be {' or '.join(allowed)}, got"
                                 f" {value!r}")
    return value


def _vhost(path: str) -> str:
    """Celery's convention: ``//`` and ``/`` and nothing are the default vhost ``/``."""
    name = path[1:] if path.startswith("/") else path
    return unquote(name) or "/"


def _non_negative(value: str | float) -> float:
    number = float(value)
    if number < 0:
        raise ValueError(f"consumer_timeout must be 0 (off) or more seconds, got {value}")
    return number


def _opt_int(value: str | None) -> int | None:
    if value is None:
        return None
    number = int(value)
    if number < 1:
        raise ValueError(f"delivery_limit must be at least 1, got {number}")
    return number
