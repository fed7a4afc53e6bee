"""app.conf: every setting typed, documented, read from keywords, environment and objects."""

from __future__ import annotations

import types

import pytest

from conveyor import ConfigurationError, Conveyor
from conveyor.config import SETTINGS, Settings, settings_table


def test_defaults_keywords_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_RESULT_TTL", "3600")
    monkeypatch.setenv("CONVEYOR_EVENTS", "off")
    app = Conveyor("t", broker="memory://", lease=5)
    assert app.conf.result_ttl == 3600.0 and app.conf["result_ttl"] == 3600.0
    assert app.conf.events is False
    assert app.lease == 5.0
    assert app.conf.delivery_limit == 5
    assert Conveyor("t", broker="memory://", result_ttl=10).conf.result_ttl == 10.0


def test_config_from_object_reads_a_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = types.SimpleNamespace(CONVEYOR_BROKER_URL="memory://x", CONVEYOR_LEASE=12,
                                     DEBUG=True, LEASE=99)
    app = Conveyor("t")
    app.config_from_object(settings, namespace="CONVEYOR")
    assert app.broker_url == "memory://x" and app.conf.lease == 12.0
    app.config_from_object({"delivery_limit": "7"})
    assert app.conf.delivery_limit == 7


def test_unknown_names_and_bad_values_are_refused_with_a_hint() -> None:
    conf = Settings({})
    with pytest.raises(ConfigurationError, match="did you mean 'result_ttl'"):
        conf.update({"result_tll": 1})
    with pytest.raises(ConfigurationError, match="setting lease: must be positive"):
        conf.lease = -1
    with pytest.raises(ConfigurationError, match="expected true or false"):
        conf.update({"events": "maybe"})
    with pytest.raises(AttributeError):
        _ = conf.nothing


def test_a_failed_update_changes_nothing() -> None:
    conf = Settings({})
    with pytest.raises(ConfigurationError):
        conf.update({"lease": 3, "result_ttl": "soon"})
    assert conf.lease == 30.0


def test_the_table_documents_every_setting() -> None:
    table = settings_table()
    for setting in SETTINGS:
        assert f"`{setting.name}`" in table and setting.doc


def test_repr_masks_passwords() -> None:
    conf = Settings({"broker_url": "redis://:hunter2@localhost/0"})
    assert "hunter2" not in repr(conf)


def test_the_configuration_page_shows_the_table_as_generated() -> None:
    from pathlib import Path

    guide = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
    assert settings_table() in guide.read_text()
