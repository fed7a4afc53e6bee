"""The checker itself: each kind of fault it must report, from a hand-written ledger."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.faults import ledger


def write(path: Path, rows: list[tuple[str, int, int, str, float]]) -> Path:
    ledger.create(path)
    with sqlite3.connect(path) as conn:
        conn.executemany("INSERT INTO runs VALUES (?, ?, ?, ?, ?)", rows)
    return path


def test_a_clean_ledger_passes(tmp_path: Path) -> None:
    path = write(tmp_path / "l.db", [("a", 1, 10, "start", 1.0), ("a", 1, 10, "end", 2.0)])
    verdict = ledger.check(path, {"a"})
    assert verdict.clean and verdict.summary()["runs"] == 1


def test_lost_unexpected_and_unexplained_reruns_are_reported(tmp_path: Path) -> None:
    path = write(tmp_path / "l.db", [
        ("a", 1, 10, "start", 1.0),                                # started, never ended: lost
        ("b", 1, 10, "start", 1.0), ("b", 1, 10, "end", 2.0),
        ("b", 2, 11, "start", 3.0), ("b", 2, 11, "end", 4.0),      # ran twice, nobody killed
        ("x", 1, 10, "start", 1.0), ("x", 1, 10, "end", 2.0),      # never enqueued
    ])
    verdict = ledger.check(path, {"a", "b", "c"}, maybe={"m"})
    assert (verdict.lost, verdict.duplicated, verdict.unexpected) == (["a", "c"], ["b"], ["x"])
    assert not verdict.clean


def test_a_rerun_after_the_holder_was_killed_is_explained(tmp_path: Path) -> None:
    path = write(tmp_path / "l.db", [
        ("a", 1, 10, "start", 1.0),
        ("a", 2, 11, "start", 5.0), ("a", 2, 11, "end", 6.0),
        ("b", 1, 10, "start", 0.5), ("b", 1, 10, "end", 2.5),
        ("b", 2, 11, "start", 50.0), ("b", 2, 11, "end", 51.0),
    ])
    faults = ledger.Faults({10: 2.0 + ledger.ACK_SLACK})
    verdict = ledger.check(path, {"a", "b"}, faults)
    assert verdict.explained == 2 and verdict.clean  # b ended within the slack of the kill
    faults = ledger.Faults({10: 2.5 + ledger.ACK_SLACK + 1})  # b ended long before
    assert ledger.check(path, {"a", "b"}, faults).duplicated == ["b"]
    assert sorted(ledger.rerun_delays(path, ledger.Faults({10: 2.0}))) == [3.0, 48.0]


def test_two_live_runs_at_once_overlap(tmp_path: Path) -> None:
    path = write(tmp_path / "l.db", [
        ("a", 1, 10, "start", 1.0), ("a", 2, 11, "start", 2.0),
        ("a", 2, 11, "end", 3.0), ("a", 1, 10, "end", 4.0),
    ])
    assert ledger.check(path, {"a"}, ledger.Faults({10: 1.5})).overlapping == []
    assert ledger.check(path, {"a"}).overlapping == ["a"]


def test_a_rerun_after_a_broker_outage_is_explained(tmp_path: Path) -> None:
    path = write(tmp_path / "l.db", [
        ("a", 1, 10, "start", 1.0), ("a", 1, 10, "end", 2.0),     # its ack met the outage
        ("a", 2, 11, "start", 20.0), ("a", 2, 11, "end", 21.0),
    ])
    assert ledger.check(path, {"a"}, ledger.Faults(outages=[(3.0, 6.0)])).clean
    assert not ledger.check(path, {"a"}, ledger.Faults(outages=[(12.0, 16.0)])).clean
