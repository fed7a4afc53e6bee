"""Tasks of the control tests (tests/integration/test_control.py), on the integration app."""

from __future__ import annotations

import asyncio
import os
import time

from conveyor import SoftTimeLimitExceeded
from tests.integration.taskapp import _trace, app


@app.task
def span(kind: str, seconds: float) -> str:
    began = time.time()
    time.sleep(seconds)
    _trace("spans", f"{kind} {began} {time.time()} {os.getpid()}")
    return kind


@app.task(rate_limit="5/s")
def limited(n: int) -> int:
    _trace("rate", repr(time.time()))
    return n


@app.task(time_limit=1)
def stuck() -> None:
    time.sleep(60)  # in C: the thread cannot be interrupted, only its process ended


@app.task(soft_time_limit=0.5, time_limit=20)
def tidy() -> str:
    try:
        for _ in range(400):
            time.sleep(0.05)
    except SoftTimeLimitExceeded:
        _trace("soft", "caught")
        return "cleaned up"
    return "ran to the end"


@app.task(soft_time_limit=0.5, time_limit=20)
async def async_tidy() -> str:
    try:
        await asyncio.sleep(20)
    except SoftTimeLimitExceeded:
        return "cleaned up"
    return "ran to the end"


@app.task(ignore_result=True)
def quiet(tag: str) -> None:
    _trace("quiet", tag)


@app.task
def endless(tag: str) -> None:
    _trace("runs", f"{tag} {os.getpid()}")
    for _ in range(600):
        time.sleep(0.1)


@app.task
async def async_endless(tag: str) -> None:
    _trace("runs", f"{tag} {os.getpid()}")
    await asyncio.sleep(60)


@app.task(concurrency_key=lambda tenant, seconds: tenant, concurrency_limit=2)
def tenant_work(tenant: str, seconds: float) -> None:
    began = time.time()
    time.sleep(seconds)
    _trace("tenants", f"{tenant} {began} {time.time()}")


@app.task(unique_key=lambda n: f"report:{n}", unique_for=60)
def unique_report(n: int) -> int:
    _trace("unique", str(n))
    time.sleep(0.3)
    return n


@app.task(time_limit=1)
def hogs_the_interpreter() -> None:
    import re

    _trace("runs", f"hog {os.getpid()}")
    # Catastrophic backtracking: minutes inside the regex engine, which never lets go of the
    # interpreter, so not even the worker's event loop runs until the process is killed.
    re.match(r"(a+)+$", "a" * 40 + "b")
