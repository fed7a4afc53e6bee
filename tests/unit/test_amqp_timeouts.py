"""RabbitMQ's consumer timeout as the URL states it, against task time limits."""

from __future__ import annotations

import pytest

from conveyor.brokers.amqp import open_store
from conveyor.errors import ConfigurationError


def test_limits_longer_than_the_stated_timeout_are_named() -> None:
    broker = open_store("amqp://guest:guest@127.0.0.1:5672//?consumer_timeout=600")
    found = broker.startup_warnings({"a.quick": 60.0, "a.long": 900.0, "a.free": None})
    assert len(found) == 1 and found[0].startswith("task a.long: time_limit 900s")
    assert "consumer timeout (600s)" in found[0]


def test_the_default_is_rabbitmqs_thirty_minutes_and_zero_is_off() -> None:
    default = open_store("amqp://guest:guest@127.0.0.1:5672//")
    assert default.startup_warnings({"a": 1800.0}) == []
    assert len(default.startup_warnings({"a": 1801.0})) == 1
    off = open_store("amqp://guest:guest@127.0.0.1:5672//?consumer_timeout=0")
    assert off.startup_warnings({"a": 10**6}) == []
    with pytest.raises(ConfigurationError, match="consumer_timeout"):
        open_store("amqp://guest:guest@127.0.0.1:5672//?consumer_timeout=-1")
