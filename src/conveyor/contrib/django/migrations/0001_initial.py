"""The outbox table."""

from __future__ import annotations

from typing import ClassVar

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies: ClassVar[list[tuple[str, str]]] = []
    operations: ClassVar[list[migrations.operations.base.Operation]] = [
        migrations.CreateModel(
            name="OutboxMessage",
            fields=[
                ("id", models.CharField(max_length=64, primary_key=True, serialize=False)),
                ("task", models.CharField(max_length=255)),
                ("queue", models.CharField(max_length=255)),
                ("body", models.BinaryField()),
                ("content_type", models.CharField(max_length=64)),
                ("priority", models.IntegerField()),
                ("eta", models.FloatField(null=True)),
                ("created", models.FloatField(db_index=True)),
            ],
            options={"db_table": "conveyor_outbox"},
        ),
    ]
