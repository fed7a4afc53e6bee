"""Dramatiq: RedisBroker (namespaced), two worker processes of one thread each, default
middleware. Messages are acked after the actor runs; no result is stored (the Results
middleware is not part of the default set). On RabbitMQ: RabbitmqBroker on the run's private
vhost with its defaults, which means no publisher confirms (``confirm_delivery=False``)."""

from __future__ import annotations

import dramatiq
from dramatiq.broker import Broker

from bench import common
from bench.adapter import Adapter, script

RABBIT = common.BACKEND == "rabbitmq"


def make_broker() -> Broker:
    if RABBIT:
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        return RabbitmqBroker(url=common.AMQP_URL)
    from dramatiq.brokers.redis import RedisBroker

    return RedisBroker(url=common.REDIS_URL, namespace=common.NS)


broker = make_broker()
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=common.QUEUE)
def count() -> None:
    common.bump()


@dramatiq.actor(queue_name=common.QUEUE)
def lat(sent: float) -> None:
    common.record_latency(sent)


class DramatiqAdapter(Adapter):
    name = "dramatiq"
    stores = ("no result, no publisher confirms (defaults); ack after the task" if RABBIT
              else "no result (Results middleware off by default); ack after the task")
    bulk_api = "group(...).run() (one enqueue per message)"

    def send_single(self, n: int) -> None:
        send = count.send
        for _ in range(n):
            send()

    def send_bulk(self, n: int) -> None:
        dramatiq.group(count.message() for _ in range(n)).run()

    def send_latency(self, sent: float) -> None:
        lat.send(sent)

    def worker_argvs(self) -> list[list[str]]:
        return [[script("dramatiq"), __name__, "--processes", "2", "--threads", "1",
                 "--queues", common.QUEUE]]

    def close(self) -> None:
        broker.close()


Adapter_ = DramatiqAdapter
