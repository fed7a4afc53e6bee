"""When a copy waiting for another delivery's id claim looks again."""

from __future__ import annotations

from conveyor.middleware.id_claims import RECHECK_FLOOR, recheck_after


def test_a_live_holders_claim_is_looked_at_every_quarter_lease() -> None:
    assert recheck_after(1.9, 2.0) == 0.5  # a renewed claim has most of its lease left
    assert recheck_after(float("inf"), 2.0) == 0.5


def test_a_claim_about_to_run_out_is_looked_at_when_it_does() -> None:
    assert recheck_after(0.3, 2.0) == 0.3
    assert recheck_after(0.001, 2.0) == RECHECK_FLOOR


def test_a_claim_freed_meanwhile_is_looked_at_soon() -> None:
    assert recheck_after(None, 2.0) == RECHECK_FLOOR
    assert recheck_after(None, 0.1) == 0.025  # never later than a quarter lease
