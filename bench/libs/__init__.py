"""One module per library: its app and tasks (imported by its workers) and its Adapter
(used by the driver). Modules import their library lazily enough that listing them is cheap."""

from __future__ import annotations

#: name -> (module, backends it runs on)
LIBS: dict[str, tuple[str, tuple[str, ...]]] = {
    "conveyor": ("bench.libs.conveyor_lib", ("sqlite", "redis")),
    "huey": ("bench.libs.huey_lib", ("sqlite", "redis")),
    "celery": ("bench.libs.celery_lib", ("redis",)),
    "dramatiq": ("bench.libs.dramatiq_lib", ("redis",)),
    "arq": ("bench.libs.arq_lib", ("redis",)),
    "rq": ("bench.libs.rq_lib", ("redis",)),
    "taskiq": ("bench.libs.taskiq_lib", ("redis",)),
}
