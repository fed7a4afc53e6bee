"""Entry point of one process-pool child: ``python -m conveyor.worker.child``.

The supervisor starts it; it parses its few options with argparse rather than the full command
line (click), which keeps each child's memory down.
"""

from __future__ import annotations

import argparse
import logging

from ..loader import load_app
from .pools import run_in_process

LOG_FORMAT = "%(asctime)s %(levelname)-7s [%(process)d] %(name)s: %(message)s"


def configure_logging(level: str) -> None:
    """The workers' log format: time, level, pid, logger and message."""
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m conveyor.worker.child")
    parser.add_argument("-A", "--app", required=True)
    parser.add_argument("-Q", "--queues", required=True)
    parser.add_argument("--grace", type=float, required=True)
    parser.add_argument("--lease", type=float, default=None)
    parser.add_argument("--prefetch", type=int, default=None)
    parser.add_argument("--parent-pid", type=int, required=True)
    parser.add_argument("-l", "--loglevel", default="info")
    args = parser.parse_args(argv)
    configure_logging(args.loglevel)
    queues = [q for q in args.queues.split(",") if q]
    run_in_process(load_app(args.app), queues, 1, grace=args.grace, lease=args.lease,
                   prefetch=args.prefetch, parent=args.parent_pid)


if __name__ == "__main__":
    main()
