"""Run the benchmarks of hpo against plain Optuna and Ray Tune, and print one table.

    .venv/bin/python -m bench.run [--quick] [--only overhead,pruning,target,scale]
                                  [--postgres URL] [--out FILE]

Every tool gets a fresh database on the same PostgreSQL server (`--postgres`, then
$HPO_BENCH_POSTGRES, then postgresql+psycopg2://postgres@127.0.0.1:5432); the databases are
named hpo_bench_<run id>_<tool> and dropped at the end. The logs of each tool's run stay in
build/bench/<run id>/. `--quick` shrinks every benchmark, to check that they run; its figures
mean nothing.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import overhead, pruning, scale, target
from bench._common import (
    REPO_ROOT,
    Context,
    Row,
    Stopwatch,
    connect_admin,
    new_run_id,
    render_table,
    server_url_from_env,
)

BENCHMARKS = ("overhead", "pruning", "target", "scale")
# The package's code: uncommitted changes here change what the figures measure.
PACKAGE_FOLDERS = ("hpo", "search", "objectives", "storage", "bench")
# Load averages above this mean other work shares the CPUs, so the figures are slower.
BUSY_LOAD = 1.0


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    selected = _selected(args.only)
    run_id = new_run_id()
    log_dir = REPO_ROOT / "build" / "bench" / run_id
    log_dir.mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(prefix=f"hpo-bench-{run_id}-"))
    context = Context(
        server_url=server_url_from_env(args.postgres),
        run_id=run_id,
        work_dir=work_dir,
        log_dir=log_dir,
        quick=args.quick,
    )

    header = describe_run(context, argv if argv is not None else sys.argv[1:])
    print(header, flush=True)
    load_before = os.getloadavg()[0]
    if load_before > BUSY_LOAD:
        print(
            f"warning: the 1-minute load average is {load_before:.2f}; other work on this "
            "machine slows the figures down",
            file=sys.stderr,
        )

    stopwatch = Stopwatch()
    loads: list[str] = []
    rows: list[Row] = []
    try:
        rows = run_benchmarks(context, selected, loads)
    finally:
        context.drop_databases()
        shutil.rmtree(work_dir, ignore_errors=True)

    table = render_table(rows)
    loads.append(f"{os.getloadavg()[0]:.2f} at the end")
    footer = (
        f"Ran in {stopwatch.elapsed() / 60:.1f} min. 1-minute load average: "
        f"{', '.join(loads)}. Logs: {log_dir.relative_to(REPO_ROOT)}/"
    )
    print()
    print(table)
    print()
    print(footer)
    if args.out is not None:
        args.out.write_text(f"{header}\n\n{table}\n\n{footer}\n", encoding="utf-8")
    return 0


def run_benchmarks(context: Context, selected: list[str], loads: list[str]) -> list[Row]:
    """Run the selected benchmarks in order and return their rows.

    The load average at the start of each benchmark is appended to `loads`, for the record.
    """
    rows: list[Row] = []
    if "overhead" in selected:
        _start("overhead", loads)
        rows += overhead.run(context)

    pruning_results = None
    if "pruning" in selected or "target" in selected:
        # The time-to-target benchmark reuses the pruning benchmark's median-pruner run.
        _start("pruning", loads)
        pruning_results = pruning.measure(context)
    if "pruning" in selected and pruning_results is not None:
        rows += pruning.rows(pruning_results)
    if "target" in selected and pruning_results is not None:
        _start("target", loads)
        rows += target.rows(target.measure(context), pruning_results["median"])

    if "scale" in selected:
        _start("scale", loads)
        rows += scale.run(context)
    return rows


def describe_run(context: Context, argv: list[str]) -> str:
    """Describe the command, the machine and the versions, for the record beside the table."""
    command = " ".join([".venv/bin/python -m bench.run", *argv])
    versions = ", ".join(
        f"{name} {importlib.metadata.version(name)}" for name in ("hpo", "optuna", "ray", "torch")
    )
    lines = [
        f"Command: {command}",
        f"Machine: {_cpu_model()}, {os.cpu_count()} CPUs (nproc {_nproc()}), "
        f"{_memory_gib():.1f} GiB memory, {platform.system()} {platform.release()}",
        f"Versions: {versions}, Python {platform.python_version()}, {_git_commit()}",
        f"PostgreSQL: {_postgres_version(context.server_url)}",
        f"Run id: {context.run_id}",
    ]
    return "\n".join(lines)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _nproc() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return float("nan")


def _git_commit() -> str:
    """Return the commit, and the package files that differ from it, if any."""
    try:
        commit = _git("rev-parse", "--short", "HEAD").strip()
        changed = _git("status", "--porcelain", "--", *PACKAGE_FOLDERS).splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "commit unknown"
    if not changed:
        return f"commit {commit}"
    paths = ", ".join(line[3:] for line in changed)
    return f"commit {commit} with uncommitted changes to {paths}"


def _git(*args: str) -> str:
    completed = subprocess.run(
        ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    return completed.stdout


def _postgres_version(server_url: str) -> str:
    connection = connect_admin(server_url)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT version()")
            return str(cursor.fetchone()[0])
    finally:
        connection.close()


def _start(benchmark: str, loads: list[str]) -> None:
    load = os.getloadavg()[0]
    loads.append(f"{load:.2f} at the start of {benchmark}")
    print(f"-- {benchmark} (load average {load:.2f})", file=sys.stderr, flush=True)


def _selected(only: str | None) -> list[str]:
    if only is None:
        return list(BENCHMARKS)
    names = [name.strip() for name in only.split(",") if name.strip()]
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        raise SystemExit(
            f"--only: unknown benchmark {', '.join(unknown)}; use {', '.join(BENCHMARKS)}"
        )
    return names


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="Benchmark hpo against plain Optuna and Ray Tune on one PostgreSQL server.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="shrink every benchmark, to check that they run; the figures mean nothing",
    )
    parser.add_argument(
        "--only",
        metavar="NAMES",
        help=f"comma-separated benchmarks to run, of {', '.join(BENCHMARKS)} (default: all)",
    )
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="PostgreSQL server URL without a database name "
        "(default: $HPO_BENCH_POSTGRES, else postgresql+psycopg2://postgres@127.0.0.1:5432)",
    )
    parser.add_argument(
        "--out", type=Path, metavar="FILE", help="also write the record and the table to FILE"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
