"""``python manage.py conveyor worker|beat|dashboard|... [options]``: the ``conveyor`` command
for this project's app (``-A`` is filled in), with Django set up in every worker process."""

from __future__ import annotations

import os
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError

APP = "conveyor.contrib.django.boot:app"


def conveyor_argv(args: list[str]) -> list[str]:
    """``worker -Q emails`` becomes ``worker -A <the project's app> -Q emails``; a subcommand
    of a group (``dlq list``) gets it after its own name."""
    if not args or args[0] in ("-h", "--help"):
        return args or ["--help"]
    if "-A" in args or "--app" in args or any(a.startswith("--app=") for a in args):
        return args
    depth = 2 if args[0] in ("dlq", "control", "inspect") and len(args) > 1 and (
        not args[1].startswith("-")) else 1
    return [*args[:depth], "-A", APP, *args[depth:]]


class Command(BaseCommand):
    help = "Run Conveyor (worker, beat, dashboard, inspect, ...) for this project's app."

    def run_from_argv(self, argv: list[str]) -> None:
        self._run(argv[2:])

    def handle(self, *args: Any, **options: Any) -> None:  # call_command("conveyor", ...)
        self._run([str(a) for a in args])

    def _run(self, args: list[str]) -> None:
        from conveyor.cli import cli

        _share_path()
        try:
            cli.main(conveyor_argv(args), prog_name="manage.py conveyor", standalone_mode=True)
        except SystemExit as stop:
            if stop.code not in (0, None):
                raise CommandError(f"conveyor exited with status {stop.code}",
                                   returncode=int(stop.code) if isinstance(stop.code, int)
                                   else 1) from None


def _share_path() -> None:
    """Worker processes import the project as this one does: put the directory of manage.py
    (``sys.path[0]``) on their PYTHONPATH."""
    here = sys.path[0] or os.getcwd()
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if here not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([here, *paths])
