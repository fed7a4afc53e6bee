"""One module per library: its app and tasks (imported by its workers) and its Adapter
(used by the driver). Modules import their library lazily enough that listing them is cheap."""

from __future__ import annotations

#: name -> (module, backends it runs on)
LIBS: dict[str, tuple[str, tuple[str, ...]]] = {
    # Conveyor variants, only run when named with --libs (BENCH_VARIANT tells the module):
    # async task bodies (no thread hop), and tasks without result records.
    "conveyor-async": ("bench.libs.conveyor_lib", ("sqlite", "redis", "rabbitmq")),
    "conveyor-noresult": ("bench.libs.conveyor_lib", ("sqlite", "redis", "rabbitmq")),
    "conveyor-prefetch": ("bench.libs.conveyor_lib", ("sqlite", "redis", "rabbitmq")),
    "conveyor-noevents": ("bench.libs.conveyor_lib", ("sqlite", "redis", "rabbitmq")),
    "conveyor": ("bench.libs.conveyor_lib", ("sqlite", "redis", "rabbitmq")),
    "raw": ("bench.libs.raw_lib", ("sqlite", "redis")),
    "huey": ("bench.libs.huey_lib", ("sqlite", "redis")),
    "celery": ("bench.libs.celery_lib", ("redis", "rabbitmq")),
    "dramatiq": ("bench.libs.dramatiq_lib", ("redis", "rabbitmq")),
    "arq": ("bench.libs.arq_lib", ("redis",)),
    "rq": ("bench.libs.rq_lib", ("redis",)),
    "taskiq": ("bench.libs.taskiq_lib", ("redis",)),
}

#: name -> BENCH_VARIANT for the variants above
VARIANTS = {"conveyor-async": "async", "conveyor-noresult": "noresult",
            "conveyor-prefetch": "prefetch", "conveyor-noevents": "noevents"}
