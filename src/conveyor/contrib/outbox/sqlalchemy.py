"""The outbox in a SQLAlchemy database: rows written through the application's session.

``SQLAlchemyStore(engine)`` keeps rows in table ``conveyor_outbox`` (``create_table()`` makes
it; or add :func:`outbox_table` to your own ``MetaData`` for Alembic). ``outbox.send(sig,
session)`` adds the row with ``session.execute``, in the session's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import (
    Column,
    Engine,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    delete,
    event,
    insert,
    select,
)
from sqlalchemy.orm import Session

from .core import Row

TABLE = "conveyor_outbox"


def outbox_table(metadata: MetaData, name: str = TABLE) -> Table:
    """The outbox table's definition, in ``metadata``."""
    return Table(
        name, metadata,
        Column("id", String(64), primary_key=True),
        Column("task", String(255), nullable=False),
        Column("queue", String(255), nullable=False),
        Column("body", LargeBinary, nullable=False),
        Column("content_type", String(64), nullable=False),
        Column("priority", Integer, nullable=False),
        Column("eta", Float, nullable=True),
        Column("created", Float, nullable=False, index=True),
    )


class SQLAlchemyStore:
    """Outbox rows in ``engine``'s database; the relay reads and deletes with its own
    connections."""

    def __init__(self, engine: Engine, table: Table | None = None) -> None:
        self.engine = engine
        self.table = table if table is not None else outbox_table(MetaData())

    def create_table(self) -> None:
        self.table.create(self.engine, checkfirst=True)

    def add(self, rows: Sequence[Row], session: Any) -> None:
        if session is None:
            raise TypeError("outbox.send(signature, session): pass the SQLAlchemy session (or"
                            " connection) whose transaction the task belongs to")
        session.execute(insert(self.table), [_values(row) for row in rows])

    def pending(self, limit: int) -> list[Row]:
        query = select(self.table).order_by(self.table.c.created).limit(limit)
        with self.engine.connect() as connection:
            return [Row(**dict(found._mapping)) for found in connection.execute(query)]

    def remove(self, ids: Sequence[str]) -> None:
        with self.engine.begin() as connection:
            connection.execute(delete(self.table).where(self.table.c.id.in_(list(ids))))

    def on_commit(self, session: Any, callback: Callable[[], None]) -> None:
        """Call ``callback`` once ``session`` commits (a plain connection: now)."""
        if not isinstance(session, Session):
            callback()
            return

        def committed(_: Session) -> None:
            callback()

        event.listen(session, "after_commit", committed, once=True)


def _values(row: Row) -> dict[str, Any]:
    return {"id": row.id, "task": row.task, "queue": row.queue, "body": row.body,
            "content_type": row.content_type, "priority": row.priority, "eta": row.eta,
            "created": row.created}
