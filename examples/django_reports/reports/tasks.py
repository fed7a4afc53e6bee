"""The reports' background work; found by the Conveyor app config in every installed app."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from conveyor.contrib.django import shared_task

from .models import Report


@shared_task(queue="reports", retries=2)
def build_report(report_id: int) -> dict[str, int]:
    """The slow part: count what the report covers and mark it done. Sent on commit, so the
    row is always there when it runs."""
    report = Report.objects.get(pk=report_id)
    rows = Report.objects.filter(created__lte=report.created).count()
    Report.objects.filter(pk=report_id).update(status="done", rows=rows,
                                               finished=timezone.now())
    return {"report": report_id, "rows": rows}


@shared_task
def clean_up(days: int = 30) -> int:
    """Daily, from the beat (settings.CONVEYOR["beat_schedule"]): drop old reports."""
    deleted, _ = Report.objects.filter(created__lt=timezone.now() - timedelta(days=days)).delete()
    return int(deleted)
