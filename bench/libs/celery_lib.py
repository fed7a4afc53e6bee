"""Celery: Redis broker and Redis result backend, prefork pool of two processes, otherwise
default settings (early ack, prefetch multiplier 4). Every task stores its SUCCESS result.
Keys are namespaced with kombu's ``global_keyprefix``.

On RabbitMQ (py-amqp transport, the run's private vhost) Celery runs as the RabbitMQ peers
are compared: no result backend, and its defaults otherwise, which means no publisher confirms
(kombu's ``confirm_publish`` is off) and the early ack."""

from __future__ import annotations

from typing import Any

from celery import Celery, chord, group

from bench import common
from bench.adapter import Adapter, script

RABBIT = common.BACKEND == "rabbitmq"
if RABBIT:
    app = Celery("bench", broker=common.AMQP_URL)
    app.conf.update(task_default_queue=common.QUEUE, task_ignore_result=True,
                    broker_connection_retry_on_startup=True)
else:
    app = Celery("bench", broker=common.REDIS_URL, backend=common.REDIS_URL)
    app.conf.update(
        broker_transport_options={"global_keyprefix": f"{common.NS}:"},
        result_backend_transport_options={"global_keyprefix": f"{common.NS}:"},
        task_default_queue=common.QUEUE,
        broker_connection_retry_on_startup=True,
    )


@app.task(name="count")
def count() -> None:
    common.bump()


@app.task(name="lat")
def lat(sent: float) -> None:
    common.record_latency(sent)


@app.task(name="wadd")
def wadd(x: int, y: int) -> int:
    return x + y


@app.task(name="wsum")
def wsum(values: list[int]) -> int:
    common.count_callback()
    return sum(values)


class CeleryAdapter(Adapter):
    name = "celery"
    stores = ("no result, no publisher confirms; ack before the task runs (defaults)" if RABBIT
              else "SUCCESS result per task (Redis backend); ack before the task runs (default)")
    bulk_api = "group(...).apply_async() (one publish per task)"

    def send_single(self, n: int) -> None:
        delay = count.delay
        for _ in range(n):
            delay()

    def send_bulk(self, n: int) -> None:
        group(count.s() for _ in range(n)).apply_async()

    def send_latency(self, sent: float) -> None:
        lat.delay(sent)

    workflows = not RABBIT

    def send_group(self, n: int) -> Any:
        return group(wadd.s(i, i) for i in range(n)).apply_async()

    def send_chord(self, n: int) -> Any:
        return chord(wadd.s(i, i) for i in range(n))(wsum.s())

    def wait_result(self, handle: Any, timeout: float) -> Any:
        return handle.get(timeout=timeout, disable_sync_subtasks=False)

    def worker_argvs(self) -> list[list[str]]:
        return [[script("celery"), "-A", __name__, "worker", "-P", "prefork", "-c", "2",
                 "-Q", common.QUEUE, "-l", "WARNING"]]

    def close(self) -> None:
        app.close()


Adapter_ = CeleryAdapter
