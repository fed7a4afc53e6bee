"""Framework integrations: :mod:`.fastapi` (and plain Starlette), :mod:`.flask`,
:mod:`.django`, and the transactional :mod:`.outbox`. Each needs its framework installed
(``pip install conveyor-tasks[fastapi]``, ``[flask]``, ``[django]``, ``[sqlalchemy]``)."""
