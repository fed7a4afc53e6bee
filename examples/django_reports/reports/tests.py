"""The reports example over real HTTP (Django's live server) against a real Conveyor worker
started with ``manage.py conveyor worker``, on the test database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.db import connection
from django.test import LiveServerTestCase
from django.utils import timezone

from conveyor.contrib.django import current_app
from conveyor.schedule.entries import entries

from .models import Report
from .tasks import clean_up

HERE = Path(__file__).resolve().parent.parent


class ReportsAgainstAWorker(LiveServerTestCase):
    worker: subprocess.Popen[bytes]

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        env = {**os.environ, "REPORTS_DB": str(connection.settings_dict["NAME"])}
        argv = [sys.executable, "manage.py", "conveyor", "worker", "-Q", "default,reports",
                "-c", "1", "-l", "warning"]
        cls.worker = subprocess.Popen(argv, cwd=HERE, env=env, start_new_session=True)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.worker.send_signal(signal.SIGTERM)
        cls.worker.wait(30)
        super().tearDownClass()

    def http(self, path: str, form: dict[str, str] | None = None) -> tuple[int, Any]:
        data = None if form is None else urllib.parse.urlencode(form).encode()
        try:
            with urllib.request.urlopen(self.live_server_url + path, data, timeout=10) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)

    def wait_final(self, task_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            _, found = self.http(f"/tasks/{task_id}")
            if found["ready"]:
                return dict(found)
            time.sleep(0.1)
        raise AssertionError(f"task {task_id} not final within 60 s")

    def test_a_report_is_generated_after_its_row_is_committed(self) -> None:
        status, answer = self.http("/reports/", {"title": "Quarterly"})
        self.assertEqual(status, 202)
        done = self.wait_final(answer["task_id"])
        self.assertEqual(done["state"], "SUCCESS")
        self.assertEqual(done["result"], {"report": answer["report"], "rows": 1})
        _, report = self.http(f"/reports/{answer['report']}/")
        self.assertEqual((report["status"], report["rows"]), ("done", 1))
        self.assertEqual(self.http("/reports/", {"title": ""})[0], 400)

    def test_the_daily_clean_up_is_scheduled_and_runs_on_the_worker(self) -> None:
        (entry,) = [e for e in entries(current_app()) if e.name == "daily clean-up"]
        self.assertIn("0 3 * * *", entry.describe())
        old = Report.objects.create(title="old")
        Report.objects.filter(pk=old.pk).update(created=timezone.now() - timedelta(days=40))
        Report.objects.create(title="new")
        self.assertEqual(clean_up.delay(30).get(timeout=60), 1)
        self.assertEqual(list(Report.objects.values_list("title", flat=True)), ["new"])
