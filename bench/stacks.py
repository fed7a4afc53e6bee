"""Summarize a py-spy ``--format raw`` profile (collapsed stacks) as text.

    py-spy record --pid PID --subprocesses --threads --idle --format raw -o prof.txt -d 10
    python -m bench.stacks prof.txt [--top 25] [--match conveyor/]

For every process and thread: its share of the samples, then the functions with the largest
inclusive share (a function counts once per sample however deep it recurs), and the leaf
frames. With ``--idle`` a thread is sampled at every tick, so a share is a share of wall time.
"""

from __future__ import annotations

import argparse
import collections
import re

_FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def frame_name(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    path = m["file"]
    for marker in ("site-packages/", "lib/python3.11/", "/work/main/src/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{m['func']} ({path})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("profile")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", default="", help="only functions whose file contains this")
    args = parser.parse_args()

    per_thread: dict[tuple[str, str], collections.Counter[str]] = collections.defaultdict(
        collections.Counter)
    leaves: dict[tuple[str, str], collections.Counter[str]] = collections.defaultdict(
        collections.Counter)
    totals: collections.Counter[tuple[str, str]] = collections.Counter()
    with open(args.profile) as f:
        for line in f:
            stack, _, count_text = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            count = int(count_text)
            frames = stack.split(";")
            procs = [x for x in frames if x.startswith("process ")]
            threads = [x for x in frames if x.startswith("thread ")]
            proc = procs[-1].split(":", 1)[0] if procs else "process ?"
            thread = threads[-1] if threads else "thread ?"
            key = (proc, thread)
            totals[key] += count
            code = [frame_name(x) for x in frames
                    if not x.startswith(("process ", "thread "))]
            for name in set(code):
                per_thread[key][name] += count
            if code:
                leaves[key][code[-1]] += count
    grand = sum(totals.values())
    for key, total in totals.most_common():
        print(f"\n== {key[0]} {key[1]}: {total} samples ({100 * total / grand:.1f}% of all)")
        print("  inclusive:")
        shown = 0
        for name, n in per_thread[key].most_common():
            if args.match and args.match not in name:
                continue
            print(f"    {100 * n / total:5.1f}%  {name}")
            shown += 1
            if shown >= args.top:
                break
        print("  leaves:")
        for name, n in leaves[key].most_common(10):
            print(f"    {100 * n / total:5.1f}%  {name}")


if __name__ == "__main__":
    main()
