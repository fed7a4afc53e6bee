"""Periodic schedules: pure functions of time that say when a periodic task is due.

``every(timedelta(minutes=5))``, ``cron("0 7 * * *", tz="Europe/Moscow")`` and Celery-style
``crontab(minute=0, hour=7, tz="Europe/Moscow")`` each give a :class:`Schedule`:
``next_run(after)`` is the first tick strictly after ``after``, ``last_run(at)`` the latest
at or before ``at``. Nothing here reads a clock or keeps state; the beat process passes the
time in, so every beat on every machine computes the same ticks.
"""

from __future__ import annotations

from .base import Schedule
from .cron import CronSchedule, cron, crontab
from .interval import IntervalSchedule, every

__all__ = ["CronSchedule", "IntervalSchedule", "Schedule", "cron", "crontab", "every"]
