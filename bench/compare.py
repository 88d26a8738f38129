"""The regression guard: the lifecycle and capacity benches on a base commit and on this tree.

Checks the base commit out into a git worktree of its own (in a temporary folder, removed
afterwards) with this tree's bench/ copied over its own (`--base-benches` keeps the base's),
and runs `bench/lifecycle.py` and `bench/capacity.py` in each tree with this environment's
interpreter and packages, the tree's own code first on PYTHONPATH. The runs
take turns (base, current, base, current, ...: one C at a time), so the load of a shared
machine, which drifts over minutes, falls on both alike. Then it prints the figures of both
side by side, with the ratio current / base.

    .venv/bin/python bench/compare.py main                            # the full run
    .venv/bin/python bench/compare.py main --job-s 20 --generations 1 --logs 50   # minutes

Each run's whole output is kept in the output folder (`--out`, default a temporary one).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent

# (label, pattern, group) per figure; a figure a tree's output lacks is shown as "-".
LIFECYCLE = (
    ("history events per log", r"per log, 10 parts: (\d+) events", 1),
    ("workflow tasks per log", r"per log, 10 parts: \d+ events, (\d+) workflow tasks", 1),
    ("billable actions per lifecycle", r"billable actions per lifecycle: (\d+)", 1),
    ("lifecycles/s", r"complete lifecycles/s[^:]*: ([\d.]+)", 1),
    ("  bare workflow/s", r"bare 4-activity workflow: ([\d.]+)/s", 1),
    ("worker CPU ms/lifecycle", r"CPU ms per lifecycle: worker ([\d.]+)", 1),
    ("Temporal CPU ms/lifecycle", r"CPU ms per lifecycle: worker [\d.]+ \+ Temporal ([\d.]+)", 1),
    ("  bare: worker CPU ms", r"CPU ms per bare workflow: worker ([\d.]+)", 1),
    ("  bare: Temporal CPU ms", r"CPU ms per bare workflow: worker [\d.]+ \+ Temporal ([\d.]+)", 1),
    ("final part -> purged, idle, s", r"final part to purged, idle[^:]*: median ([\d.]+)", 1),
)
CAPACITY = (
    ("parts/s stored", r"stored\s+([\d.]+)/s", 1),
    ("parts lost", r"lost (\d+)", 1),
    ("live p50 ms", r"live p50/p99\s+([\d.]+)/", 1),
    ("live p99 ms", r"live p50/p99\s+[\d.]+/\s*([\d.]+) ms", 1),
    ("final -> purged p50 s", r"final->purged p50/p99\s+([\d.]+)/", 1),
    ("final -> purged p99 s", r"final->purged p50/p99\s+[\d.]+/\s*([\d.]+) s", 1),
    ("unpurged", r"\((\d+) unpurged\)", 1),
    ("backlog max", r"backlog max (\d+)", 1),
    ("archives matched", r"archives (\d+)/", 1),
)
CPU_LINE = re.compile(r"^\s+cpu (.+?)\s+[\d.]+ s\s+[\d.]+ us/part\s+([\d.]+) ms/lifecycle")
ACTIONS = re.compile(r"billable Temporal actions ([\d.]+)")
MEETS = re.compile(r"\b(MEETS|misses) targets")


@dataclass
class Tree:
    name: str
    root: Path


@contextlib.contextmanager
def base_tree(commit: str, own_benches: bool) -> Iterator[Tree]:
    """`commit` checked out in a temporary worktree, with this tree's node_modules and,
    unless `own_benches`, this tree's bench/: both trees are measured by the same benches
    (a change of a bench's load would otherwise show as a change of the code)."""
    with tempfile.TemporaryDirectory(prefix="compare-") as tmp:
        root = Path(tmp) / "base"
        git = ["git", "-C", str(HERE)]
        subprocess.run([*git, "worktree", "add", "--detach", str(root), commit], check=True)
        try:
            modules = HERE / "node_modules"
            if modules.is_dir():  # pusher-js for the capacity bench's browser stand-in
                (root / "node_modules").symlink_to(modules)
            if not own_benches:
                shutil.copytree(HERE / "bench", root / "bench", dirs_exist_ok=True)
            yield Tree(f"base {commit}", root)
        finally:
            subprocess.run([*git, "worktree", "remove", "--force", str(root)], check=False)


def run(tree: Tree, script: str, argv: list[str], log: Path) -> str:
    """The tree's bench, its output kept in `log`; what it printed (also when it failed)."""
    env = {**os.environ, "PYTHONPATH": str(tree.root)}
    command = [sys.executable, str(tree.root / "bench" / script), *argv]
    print(f"  {tree.name}: {script} {' '.join(argv)}", flush=True)
    done = subprocess.run(
        command, cwd=tree.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, check=False,
    )  # fmt: skip
    log.write_text(done.stdout)
    if done.returncode:
        print(f"    exited with {done.returncode}; see {log}", flush=True)
    return done.stdout


def figures(text: str, patterns: tuple[tuple[str, str, int], ...]) -> dict[str, float]:
    found = {}
    for label, pattern, group in patterns:
        match = re.search(pattern, text)
        if match:
            found[label] = float(match.group(group))
    return found


def capacity_figures(text: str) -> dict[str, float]:
    """The figures of the (first) row of a capacity run's output, CPU per process included."""
    row = next((line for line in text.splitlines() if re.search(r"C=\s*\d+", line)), "")
    found = figures(row, CAPACITY)
    if (meets := MEETS.search(row)) is not None:
        found["meets targets (1 = yes)"] = float(meets.group(1) == "MEETS")
    for line in text.splitlines():
        if (cpu := CPU_LINE.match(line)) is not None:
            found[f"cpu ms/lifecycle {cpu.group(1)}"] = float(cpu.group(2))
        elif (actions := ACTIONS.search(line)) is not None:
            found["billable actions per lifecycle"] = float(actions.group(1))
    return found


def table(title: str, base: dict[str, float], current: dict[str, float]) -> list[str]:
    lines = [title, f"  {'figure':36s} {'base':>10s} {'current':>10s} {'current/base':>13s}"]
    for label in dict.fromkeys([*base, *current]):
        b, c = base.get(label), current.get(label)
        ratio = c / b if b and c is not None and not math.isnan(b) else None
        lines.append(
            f"  {label:36s} {_cell(b)} {_cell(c)} "
            + (f"{ratio:13.2f}" if ratio is not None else f"{'-':>13s}")
        )
    return lines


def _cell(value: float | None) -> str:
    return f"{value:10.1f}" if value is not None else f"{'-':>10s}"


def main() -> None:
    args = parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="compare-out-"))
    out.mkdir(parents=True, exist_ok=True)
    current = Tree("current", HERE)
    report: list[str] = []
    with base_tree(args.base, args.base_benches) as base:
        trees = (base, current)
        if args.logs:
            texts = [
                run(t, "lifecycle.py", ["--logs", str(args.logs)], out / f"lifecycle-{i}.txt")
                for i, t in enumerate(trees)
            ]
            found = [figures(text, LIFECYCLE) for text in texts]
            report += table("bench/lifecycle.py", *found)
        for c in args.c:
            shape = ["--c", str(c), "--job-s", str(args.job_s)]
            shape += ["--generations", str(args.generations)]
            texts = [
                run(t, "capacity.py", shape, out / f"capacity-{c}-{i}.txt")
                for i, t in enumerate(trees)
            ]
            found = [capacity_figures(text) for text in texts]
            report += table(f"bench/capacity.py at C = {c}", *found)
    print(f"\nbase {args.base} against the current tree ({HERE.name}); outputs in {out}")
    print("\n".join(report))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("base", help="the commit to compare against (e.g. main)")
    parser.add_argument(
        "--c", type=lambda s: [int(x) for x in s.split(",") if x], default=[300, 500],
        help="capacity levels, comma-separated (300,500); empty skips the capacity bench",
    )  # fmt: skip
    parser.add_argument("--job-s", type=float, default=60, help="capacity: seconds per job (60)")
    parser.add_argument("--generations", type=int, default=2, help="capacity: jobs per slot (2)")
    parser.add_argument("--logs", type=int, default=200, help="lifecycle: logs (200; 0 skips)")
    parser.add_argument("--out", help="where the outputs are kept (default: a temporary folder)")
    parser.add_argument(
        "--base-benches",
        action="store_true",
        help="run the base commit's own bench/ on it (default: this tree's, on both)",
    )
    return parser.parse_args()


if __name__ == "__main__":
    main()
