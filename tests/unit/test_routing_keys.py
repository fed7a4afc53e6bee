"""A call's ``routing_key=``: on RabbitMQ it picks the key a topic exchange routes by (or, on
the default exchange, the queue); elsewhere it is refused with a message saying why."""

from __future__ import annotations

import pytest

from conveyor import Conveyor
from conveyor.errors import ConfigurationError


def rabbit_app() -> Conveyor:
    app = Conveyor("rk", broker="amqp://guest:guest@127.0.0.1:5672//",
                   backend="memory://routing-keys", routes={"rk.image.*": "topic/media/image.png"})

    @app.task(name="rk.image.resize")
    def resize(name: str) -> None: ...

    @app.task(name="rk.plain")
    def plain() -> None: ...

    return app


def test_a_key_replaces_the_topic_key_of_the_route_or_the_call() -> None:
    app = rabbit_app()
    resize, plain = app.tasks["rk.image.resize"], app.tasks["rk.plain"]
    assert app.build_message(resize.name, resize.options, ("a",), {},
                             routing_key="image.gif").queue == "topic/media/image.gif"
    assert app.build_message(plain.name, plain.options, (), {}, queue="topic/media",
                             routing_key="video.mp4").queue == "topic/media/video.mp4"
    assert app.build_message(plain.name, plain.options, (), {}, queue="topic/media/x.y",
                             routing_key="a.b").queue == "topic/media/a.b"


def test_signature_set_carries_the_key_to_the_message() -> None:
    app = rabbit_app()
    sig = app.signature("rk.plain").set(queue="topic/media", routing_key="doc.pdf")
    assert sig.options["routing_key"] == "doc.pdf"
    node = sig.freeze()
    message = app.build_message("rk.plain", None, (), {}, **node["options"])
    assert message.queue == "topic/media/doc.pdf"


def test_on_the_default_exchange_the_key_is_the_queue_name() -> None:
    app = rabbit_app()
    plain = app.tasks["rk.plain"]
    assert app.build_message(plain.name, plain.options, (), {},
                             routing_key="emails").queue == "emails"
    assert app.build_message(plain.name, plain.options, (), {}, queue="emails",
                             routing_key="emails").queue == "emails"
    with pytest.raises(ConfigurationError, match="default exchange the key is the queue name"):
        app.build_message(plain.name, plain.options, (), {}, queue="emails",
                          routing_key="sms")


def test_a_fanout_exchange_or_an_empty_key_is_refused() -> None:
    app = rabbit_app()
    with pytest.raises(ConfigurationError, match="fanout exchange"):
        app.build_message("rk.plain", None, (), {}, queue="fanout/cache", routing_key="k")
    with pytest.raises(ConfigurationError, match="1 to 255 bytes"):
        app.build_message("rk.plain", None, (), {}, queue="topic/media", routing_key="")


@pytest.mark.parametrize("broker", ["memory://rk-unit", "redis://127.0.0.1:6379/0",
                                    "sqlite:///unused.db"])
def test_brokers_without_exchanges_refuse_a_key(broker: str) -> None:
    app = Conveyor("rk", broker=broker)

    @app.task(name="rk.plain")
    def plain() -> None: ...

    scheme = broker.partition(":")[0]
    with pytest.raises(ConfigurationError, match=f"a {scheme}:// broker has no exchanges"):
        plain.apply_async(routing_key="emails")
    with pytest.raises(ConfigurationError, match="name the queue with queue="):
        app.signature("rk.plain").set(routing_key="emails").apply_async()
