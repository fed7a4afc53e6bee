"""A leader lease in the store: at most one holder at a time, passed on when the holder stops
renewing it. Beats use it so that one of them works at a time; what keeps a tick from being
sent twice is the per-tick key (see :mod:`conveyor.schedule.beat`), not the lease alone.
"""

from __future__ import annotations

import logging

from ..brokers import Coordination

log = logging.getLogger("conveyor.beat")


class Leader:
    """The lease ``key``, held by ``holder`` for ``ttl`` seconds at a time.

    Call :meth:`refresh` at least every third of ``ttl``: it renews the lease while held and
    takes it when it is free. ``resumed`` is True right after taking it (work done by an earlier
    holder may have stopped half-way); :meth:`release` hands it on at once.
    """

    def __init__(self, store: Coordination, key: str, holder: str, ttl: float) -> None:
        if ttl <= 0:
            raise ValueError("a lease needs a positive ttl")
        self.store, self.key, self.ttl = store, key, ttl
        self.holder = holder.encode()
        self.leading = False
        self.resumed = False

    async def refresh(self) -> bool:
        """Renew or take the lease; True while this holder has it."""
        if self.leading:
            self.resumed = False
            if await self.store.acompare_and_set(self.key, self.holder, self.holder, self.ttl):
                return True
            self.leading = False
            log.warning("beat %s lost the lead (its lease ran out)", self.holder.decode())
        held = await self.store.aput_if_absent(self.key, self.holder, self.ttl)
        if held is None or held == self.holder:
            self.leading = self.resumed = True
            if held == self.holder:  # ours from before a restart: renew it
                await self.store.aset_value(self.key, self.holder, self.ttl)
            log.info("beat %s leads", self.holder.decode())
        return self.leading

    async def release(self) -> None:
        """Give the lease up so another holder takes it at once."""
        if self.leading:
            self.leading = False
            await self.store.acompare_and_set(self.key, self.holder, None, self.ttl)
