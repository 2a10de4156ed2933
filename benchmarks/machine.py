"""What a benchmark ran on, and writing its markdown section.

Every benchmark script calls ``write_section(name, title, command, body)``;
``benchmarks/run_all.py`` (``make bench``) runs the scripts and assembles
BENCHMARKS.md from ``benchmarks/results/*.md``.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def gpu_name() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def describe() -> str:
    """One line: CPU model, cores, TF version, GPU (if any), date."""
    import tensorflow as tf

    gpu = gpu_name()
    return (f"{cpu_model()}, {os.cpu_count()} cores, TensorFlow {tf.__version__}"
            f"{', GPU ' + gpu if gpu else ', no GPU'}; {dt.date.today().isoformat()}")


def write_section(name: str, title: str, command: str, body: str) -> Path:
    """Write ``benchmarks/results/<name>.md``: title, machine, command, body (a markdown table)."""
    RESULTS.mkdir(exist_ok=True)
    text = f"## {title}\n\nMachine: {describe()}\n\nCommand: `{command}`\n\n{body.strip()}\n"
    path = RESULTS / f"{name}.md"
    path.write_text(text)
    print(text)
    return path


def table(header: list[str], rows: list[list]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
