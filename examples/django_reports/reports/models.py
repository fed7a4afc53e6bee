from __future__ import annotations

from django.db import models


class Report(models.Model):
    title = models.CharField(max_length=200)
    status = models.CharField(max_length=20, default="queued")
    rows = models.IntegerField(null=True)
    created = models.DateTimeField(auto_now_add=True)
    finished = models.DateTimeField(null=True)

    def __str__(self) -> str:
        return f"{self.title} ({self.status})"
