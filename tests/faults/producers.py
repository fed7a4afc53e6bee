"""Producer processes for the fault matrix: ``python -m tests.faults.producers MODE ...``.

``same-ids COUNT SEED START``: at wall-clock time START, enqueue work tasks with the ids
``dup-0`` .. ``dup-{COUNT-1}`` in a shuffled order, one call each; print ``ok ID`` or
``err ID TYPE`` per call. ``stream CHUNK``: enqueue chunks of work tasks until killed, printing
the ids of each chunk once its publish returned, every 10 ms.
"""

from __future__ import annotations

import random
import sys
import time

from conveyor.errors import ConveyorError
from tests.faults import faultapp


def same_ids(count: int, seed: int, start: float) -> None:
    ids = [f"dup-{i}" for i in range(count)]
    random.Random(seed).shuffle(ids)
    time.sleep(max(0.0, start - time.time()))
    for task_id in ids:
        try:
            faultapp.work.apply_async((0.05,), task_id=task_id)
            print("ok", task_id, flush=True)
        except ConveyorError as exc:
            print("err", task_id, type(exc).__name__, flush=True)


def stream(chunk: int) -> None:
    print("ready", flush=True)
    while True:
        sent = faultapp.app.send_many([faultapp.work.s(0.01) for _ in range(chunk)])
        print(" ".join(r.id for r in sent), flush=True)
        time.sleep(0.01)


def main(argv: list[str]) -> None:
    mode, *rest = argv
    if mode == "same-ids":
        same_ids(int(rest[0]), int(rest[1]), float(rest[2]))
    elif mode == "stream":
        stream(int(rest[0]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
