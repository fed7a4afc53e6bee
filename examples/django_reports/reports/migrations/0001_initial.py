from __future__ import annotations

from typing import ClassVar

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies: ClassVar[list[tuple[str, str]]] = []
    operations: ClassVar[list[migrations.operations.base.Operation]] = [
        migrations.CreateModel(name="Report", fields=[
            ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False)),
            ("title", models.CharField(max_length=200)),
            ("status", models.CharField(default="queued", max_length=20)),
            ("rows", models.IntegerField(null=True)),
            ("created", models.DateTimeField(auto_now_add=True)),
            ("finished", models.DateTimeField(null=True)),
        ]),
    ]
