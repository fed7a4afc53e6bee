from __future__ import annotations

from typing import ClassVar

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies: ClassVar[list[tuple[str, str]]] = []
    operations: ClassVar[list[migrations.operations.base.Operation]] = [
        migrations.CreateModel(name="Note", fields=[
            ("id", models.AutoField(primary_key=True, serialize=False)),
            ("text", models.CharField(max_length=200)),
        ]),
    ]
