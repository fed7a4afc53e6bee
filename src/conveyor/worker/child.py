"""Entry point of one process-pool child: ``python -m conveyor.worker.child``.

The supervisor starts it; it parses its few options with argparse rather than the full command
line (click), which keeps each child's memory down.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ..errors import ConfigurationError
from ..loader import load_app
from .groups import QueueGroup
from .pools import EXIT_CONFIG, Options, run_in_process

LOG_FORMAT = "%(asctime)s %(levelname)-7s [%(process)d] %(name)s: %(message)s"


def configure_logging(level: str, logfile: str | None = None) -> None:
    """The workers' log format: time, level, pid, logger and message; to stderr or a file."""
    handler: logging.Handler = (logging.FileHandler(logfile) if logfile
                                else logging.StreamHandler())
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m conveyor.worker.child")
    parser.add_argument("-A", "--app", required=True)
    parser.add_argument("-Q", "--queues", required=True)
    parser.add_argument("--grace", type=float, required=True)
    parser.add_argument("--pool-size", type=int, default=1)
    parser.add_argument("--lease", type=float, default=None)
    parser.add_argument("--prefetch", type=int, default=None)
    parser.add_argument("--name", default=None)
    parser.add_argument("--parent-pid", type=int, required=True)
    parser.add_argument("--ready-fd", type=int, default=None)
    parser.add_argument("--banner", action="store_true")
    parser.add_argument("--beat", action="store_true")
    parser.add_argument("-l", "--loglevel", default="info")
    parser.add_argument("--logfile", default=None)
    parser.add_argument("--groups", default=None, help="the whole worker's slot groups, shown"
                        " in the banner: 'emails:4 default:3'")
    args = parser.parse_args(argv)
    configure_logging(args.loglevel, args.logfile)
    try:
        app = load_app(args.app)
    except ConfigurationError as exc:
        print(f"Error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_CONFIG) from None
    options = Options([q for q in args.queues.split(",") if q], args.pool_size, "process",
                      args.grace, args.lease, args.prefetch, args.name, args.banner, args.app,
                      _groups(args.groups), beat=args.beat)
    run_in_process(app, options, parent=args.parent_pid, ready_fd=args.ready_fd)


def _groups(shown: str | None) -> tuple[QueueGroup, ...]:
    """Slot groups from their ``describe()`` forms, space-separated."""
    found = []
    for part in (shown or "").split():
        queues, _, slots = part.rpartition(":")
        found.append(QueueGroup(tuple(queues.split(",")), int(slots)))
    return tuple(found)


if __name__ == "__main__":
    main()
