"""``make bench``: run every benchmark script (each bounds its own time), then write BENCHMARKS.md.

    .venv/bin/python benchmarks/run_all.py [--only NAME ...] [--timeout SECONDS]

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
SKIP = {"run_all.py", "machine.py", "__init__.py"}
HEADER = """# Benchmarks

Every figure below was measured by a script in `benchmarks/` (the command is
given with each section), on the machine named there. The machine is shared
and noisy: compare the ratios measured side by side in one run, not absolute
times across sections. `make bench` reruns everything and rewrites this file.

`make bench` is bounded: every script bounds its own time (its budget options
are in its docstring) and the runner stops any script at `--timeout` (default
75 min), so a full run cannot exceed 18 x 75 min; with the scripts' default
budgets it takes about 3.5 hours on this 2-core machine (detection ~70 min with
its 60-minute YOLO budget, transfer ~25 min, augmentation ~10 min, classic
nets, faces, first-step and training efficiency ~10-15 min each, the rest a few
minutes).
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="run only these scripts (names without .py)")
    parser.add_argument("--timeout", type=int, default=4500, help="per-script limit in seconds (default 4500)")
    parser.add_argument("--assemble-only", action="store_true", help="only rebuild BENCHMARKS.md from results/")
    args = parser.parse_args(argv)
    failures = []
    if not args.assemble_only:
        scripts = sorted(p for p in HERE.glob("*.py") if p.name not in SKIP)
        if args.only:
            scripts = [p for p in scripts if p.stem in args.only]
        for script in scripts:
            start = time.time()
            print(f"== {script.name}", flush=True)
            try:
                code = subprocess.run([sys.executable, str(script)], cwd=HERE.parent, timeout=args.timeout).returncode
            except subprocess.TimeoutExpired:
                code = "timeout"
            print(f"== {script.name}: {'ok' if code == 0 else code} in {time.time() - start:.0f} s", flush=True)
            if code != 0:
                failures.append(f"{script.name} ({code})")
    sections = [p.read_text().strip() for p in sorted((HERE / "results").glob("*.md"))]
    (HERE.parent / "BENCHMARKS.md").write_text(HEADER + "\n" + "\n\n".join(sections) + "\n")
    print(f"wrote BENCHMARKS.md ({len(sections)} sections)")
    if failures:
        print("failed: " + ", ".join(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
