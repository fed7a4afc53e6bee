"""The application of the outbox kill test: sign-ups written with SQLAlchemy, a welcome task
per user in the outbox of the same transaction, a relay, and a task that records each run.

``python -m tests.contrib.outbox_app write N`` commits N users and their tasks, prints the task
ids, then relays; ``... relay`` relays until the outbox is empty. ``CONVEYOR_TEST_OUTBOX_CRASH``
kills either right before or right after the publish.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, insert
from sqlalchemy.orm import Session

from conveyor import Conveyor
from conveyor.contrib.outbox import Outbox
from conveyor.contrib.outbox.sqlalchemy import SQLAlchemyStore

HERE = Path(os.environ["CONVEYOR_TEST_DIR"])
app = Conveyor("outboxtest")
engine = create_engine(f"sqlite:///{HERE / 'app.db'}")
metadata = MetaData()
users = Table("users", metadata, Column("id", Integer, primary_key=True),
              Column("email", String(200)))
outbox = Outbox(app, SQLAlchemyStore(engine))


@app.task(name="outboxtest.welcome")
def welcome(user: int) -> int:
    with open(HERE / "runs", "a") as runs:  # one line per run, appended atomically
        runs.write(f"{user}\n")
    return user


def write(count: int) -> None:
    metadata.create_all(engine)
    outbox.store.create_table()  # type: ignore[attr-defined]
    with Session(engine) as session, session.begin():
        ids = []
        for n in range(count):
            session.execute(insert(users).values(id=n, email=f"user{n}@example.com"))
            ids.append(outbox.send(welcome.s(n), session).id)
    print(" ".join(ids), flush=True)  # committed: from here on the tasks must not be lost
    relay()


def relay() -> None:
    r = outbox.relay(batch=50, lease=1.0)  # a killed relay's lease passes on within 1 s
    while outbox.store.pending(1):
        if not r.relay_once():
            time.sleep(0.05)
    app.close()


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(int(sys.argv[2]))
    else:
        relay()
