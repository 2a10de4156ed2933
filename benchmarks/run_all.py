"""``make bench``: run every benchmark script (each bounds its own time), then write BENCHMARKS.md.

    .venv/bin/python benchmarks/run_all.py [--full] [--only NAME ...] [--timeout SECONDS]

``make bench`` runs each script with its defaults, except the ones in
``SHORT_ARGS`` (the detection benchmark trains YOLO 15 minutes instead of 60,
the two-stage benchmark each of its four detectors 3 minutes instead of 10,
each into its own section); ``--full`` (``make bench-full``) runs those at their
defaults too, as recorded for their goals.

A script that fails or runs past its timeout is reported and its previous
section (if any) is kept, so BENCHMARKS.md always holds the latest good figures.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.machine import table, write_section  # noqa: E402
from benchmarks.readme_blocks import sync_readme  # noqa: E402

SKIP = {"run_all.py", "machine.py", "readme_blocks.py", "__init__.py"}
SHORT_ARGS = {"detection": ["--budget-min", "15", "--out", str(HERE / "results" / "detection_short.md")],
              "two_stage": ["--budget-min", "3", "--out", str(HERE / "results" / "two_stage_short.md")]}
DEFAULT_TIMEOUT_S = 4500
RUN_TIMES = HERE / "results" / "make_bench_run.md"  # written by write_run_times after each complete run
HEADER = """# Benchmarks

Every figure below was measured by a script in `benchmarks/` (the command is
given with each section), on the machine named there. The machine is shared
and noisy: compare the ratios measured side by side in one run, not absolute
times across sections. `make bench` reruns everything and rewrites this file.

`make bench` is bounded: every script bounds its own time (its budget options
are in its docstring) and the runner stops any script at `--timeout` (default
{timeout_min} min). `make bench-full` runs every script at its own defaults
(the detection benchmark's YOLO for the 60 minutes its mAP goal was set for,
each two-stage detector for 10 minutes).
"""


def last_run_summary(path: Path = RUN_TIMES, scripts: list[str] | None = None) -> str:
    """One paragraph on the last complete run, computed from its recorded table (no figure typed by hand)."""
    import re

    if not path.is_file():
        return "No complete `make bench` run has been recorded yet."
    text = path.read_text()
    rows = [(name, float(minutes)) for name, minutes in re.findall(r"^\| (\S+)\.py \| \S+ \| ([\d.]+) \|$", text, re.M)]
    if not rows:
        return "No complete `make bench` run has been recorded yet."
    machine = re.search(r"^Machine: (.+)$", text, re.M)
    longest = sorted(rows, key=lambda r: -r[1])[:4]
    rest = max((m for _, m in rows if (_, m) not in longest), default=0.0)
    out = (f"The last complete run recorded (section \"The last complete `make bench` run\" below"
           f"{', ' + machine.group(1) if machine else ''}) took {sum(m for _, m in rows):.0f} minutes: "
           + ", ".join(f"{name} {m:.0f}" for name, m in longest) + f", each other script {rest:.1f} or less.")
    missing = sorted(set(scripts or []) - {name for name, _ in rows})
    if missing:
        out += " Scripts added since, not in that run: " + ", ".join(missing) + "."
    return out


def header(scripts: list[str] | None = None) -> str:
    import textwrap

    summary = textwrap.fill(last_run_summary(RUN_TIMES, scripts), 78)
    return HEADER.format(timeout_min=DEFAULT_TIMEOUT_S // 60) + "\n" + summary + "\n"


def script_paths() -> list[Path]:
    return sorted(p for p in HERE.glob("*.py") if p.name not in SKIP)


def write_run_times(times: list[tuple[str, str, float]], args) -> None:
    """Record how long each script of this complete run took (``results/make_bench_run.md``)."""
    total = sum(t for _, _, t in times)
    rows = [[name, status, f"{seconds / 60:.1f}"] for name, status, seconds in times]
    rows.append(["**all**", f"{sum(s == 'ok' for _, s, _ in times)}/{len(times)} ok", f"**{total / 60:.1f}**"])
    command = "make bench-full" if args.full else "make bench"
    write_section("make_bench_run", f"The last complete `{command}` run ({total / 3600:.2f} h)",
                  f".venv/bin/python benchmarks/run_all.py{' --full' if args.full else ''} --timeout {args.timeout}",
                  table(["script", "result", "minutes"], rows))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="run only these scripts (names without .py)")
    parser.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT_S,
                        help=f"per-script limit in seconds (default {DEFAULT_TIMEOUT_S})")
    parser.add_argument("--full", action="store_true", help="run every script at its own defaults (YOLO 60 min)")
    parser.add_argument("--assemble-only", action="store_true", help="only rebuild BENCHMARKS.md from results/")
    args = parser.parse_args(argv)
    failures, times = [], []
    if not args.assemble_only:
        scripts = script_paths()
        if args.only:
            scripts = [p for p in scripts if p.stem in args.only]
        for script in scripts:
            start = time.time()
            print(f"== {script.name}", flush=True)
            try:
                extra = [] if args.full else SHORT_ARGS.get(script.stem, [])
                code = subprocess.run([sys.executable, str(script), *extra], cwd=HERE.parent, timeout=args.timeout).returncode
            except subprocess.TimeoutExpired:
                code = "timeout"
            times.append((script.name, "ok" if code == 0 else str(code), time.time() - start))
            print(f"== {script.name}: {times[-1][1]} in {times[-1][2]:.0f} s", flush=True)
            if code != 0:
                failures.append(f"{script.name} ({code})")
        if not args.only:
            write_run_times(times, args)
    sections = [p.read_text().strip() for p in sorted((HERE / "results").glob("*.md"))]
    header_text = header([p.stem for p in script_paths()])
    (HERE.parent / "BENCHMARKS.md").write_text(header_text + "\n" + "\n\n".join(sections) + "\n")
    print(f"wrote BENCHMARKS.md ({len(sections)} sections); README blocks refilled: {', '.join(sync_readme())}")
    if failures:
        print("failed: " + ", ".join(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
