"""A transactional outbox: a task is written in the application's own database transaction,
and a relay publishes it to the broker once, keyed by its task id.

``delay_on_commit`` (here, in Celery, Huey or Sidekiq) publishes after the commit from the same
process: if that process dies between the commit and the publish, the row is there and the task
is gone. With the outbox the task is a row of the same commit, so it exists exactly when the
data it is about exists; a relay (a thread in the web process, or its own process) sends what
is written, and a relay killed at any point loses nothing and sends nothing twice:

- killed before it published a row: the row is still there, the next relay sends it;
- killed after publishing, before deleting the rows: the next relay finds each id already
  known to the result backend (the broker wrote its PENDING record in the same step as the
  message) and deletes the row without sending it again.

```python
from conveyor.contrib.outbox import Outbox
from conveyor.contrib.outbox.sqlalchemy import SQLAlchemyStore

outbox = Outbox(app, SQLAlchemyStore(engine))        # or DjangoStore() in a Django project
outbox.store.create_table()                          # Django: manage.py migrate

with Session(engine) as session, session.begin():
    session.add(User(email=email))
    result = outbox.send(send_email.s(email, "Welcome!"), session)   # an AsyncResult

outbox.relay().start()   # a background thread; or `conveyor-outbox`-style: relay().run()
```

One relay leads at a time (a lease in the result backend), so any number may run. Exactly one
publish per id holds where the broker is also the result backend (the message and its PENDING
record are one write); with a separate backend a relay killed between the two writes may send
a task twice, and the worker still runs a task whose outcome is final only once.
"""

from __future__ import annotations

from .core import CRASH_ENV, Outbox, OutboxStore, Relay, Row

__all__ = ["CRASH_ENV", "Outbox", "OutboxStore", "Relay", "Row"]
