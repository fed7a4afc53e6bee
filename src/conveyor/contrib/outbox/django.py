"""The outbox in a Django database: rows written with the ORM in the current transaction.

Add ``"conveyor.contrib.django"`` to ``INSTALLED_APPS`` and run ``manage.py migrate`` (it makes
table ``conveyor_outbox``). ``outbox.send(sig)`` inside ``transaction.atomic()`` writes the
row in that transaction (``outbox.send(sig, "other")`` for another database alias).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .core import Row


class DjangoStore:
    """Outbox rows in Django's database ``using``."""

    def __init__(self, using: str = "default") -> None:
        self.using = using

    def add(self, rows: Sequence[Row], session: Any) -> None:
        from ..django.models import OutboxMessage

        alias = session or self.using
        OutboxMessage.objects.using(alias).bulk_create(
            [OutboxMessage(id=r.id, task=r.task, queue=r.queue, body=r.body,
                           content_type=r.content_type, priority=r.priority, eta=r.eta,
                           created=r.created) for r in rows])

    def pending(self, limit: int) -> list[Row]:
        from django.db import close_old_connections

        from ..django.models import OutboxMessage

        close_old_connections()
        found = OutboxMessage.objects.using(self.using).order_by("created")[:limit]
        return [Row(m.id, m.task, m.queue, bytes(m.body), m.content_type, m.priority, m.eta,
                    m.created) for m in found]

    def remove(self, ids: Sequence[str]) -> None:
        from ..django.models import OutboxMessage

        OutboxMessage.objects.using(self.using).filter(id__in=list(ids)).delete()

    def on_commit(self, session: Any, callback: Callable[[], None]) -> None:
        from django.db import transaction

        transaction.on_commit(callback, using=session or self.using)
