"""The transactional outbox's table (see :mod:`conveyor.contrib.outbox`)."""

from __future__ import annotations

from django.db import models


class OutboxMessage(models.Model):
    """A task written in the application's transaction, waiting for the relay."""

    id = models.CharField(primary_key=True, max_length=64)
    task = models.CharField(max_length=255)
    queue = models.CharField(max_length=255)
    body = models.BinaryField()
    content_type = models.CharField(max_length=64)
    priority = models.IntegerField()
    eta = models.FloatField(null=True)
    created = models.FloatField(db_index=True)

    class Meta:
        app_label = "conveyor"
        db_table = "conveyor_outbox"

    def __str__(self) -> str:
        return f"{self.task}[{self.id}]"
