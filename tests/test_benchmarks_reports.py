"""Benchmark reports hold only figures their scripts compute: no hand-typed run times, CPU facts or exploration numbers."""

import ast
import re
from pathlib import Path

import pytest

from benchmarks import run_all, training_efficiency
from benchmarks.machine import table

ROOT = Path(__file__).resolve().parents[1]


def _run_table(path: Path, minutes: dict[str, float]) -> Path:
    """A run-times section in the layout ``run_all.write_run_times`` writes."""
    rows = [[f"{name}.py", "ok", f"{m:.1f}"] for name, m in minutes.items()]
    rows.append(["**all**", f"{len(rows)}/{len(rows)} ok", f"**{sum(minutes.values()):.1f}**"])
    path.write_text("## The last complete `make bench` run (0.50 h)\n\nMachine: Test CPU, 2 cores; 2026-12-01\n\n"
                    "Command: `x`\n\n" + table(["script", "result", "minutes"], rows) + "\n")
    return path


def test_run_all_header_is_computed_from_the_recorded_run(tmp_path):
    path = _run_table(tmp_path / "make_bench_run.md", {"augment": 6.4, "detection": 16.6, "faces": 5.7, "transfer": 14.0,
                                                        "peak": 0.1, "style": 0.7})
    summary = run_all.last_run_summary(path, ["augment", "detection", "faces", "transfer", "peak", "style", "two_stage"])
    assert "took 44 minutes" in summary  # 6.4 + 16.6 + 5.7 + 14.0 + 0.1 + 0.7 = 43.5
    assert "detection 17, transfer 14, augment 6, faces 6, each other script 0.7 or less" in summary
    assert "Test CPU, 2 cores; 2026-12-01" in summary
    assert "not in that run: two_stage." in summary
    assert run_all.last_run_summary(tmp_path / "missing.md") == "No complete `make bench` run has been recorded yet."


def test_run_all_header_agrees_with_the_recorded_total():
    recorded = (ROOT / "benchmarks" / "results" / "make_bench_run.md").read_text()
    total = float(re.search(r"^\| \*\*all\*\* \| .+ \| \*\*([\d.]+)\*\* \|$", recorded, re.M).group(1))
    header = " ".join(run_all.header().split())
    assert f"took {total:.0f} minutes" in header
    assert "default 75 min" in header  # the runner's --timeout default, 4500 s
    assert "67 minutes" not in run_all.HEADER  # no run time typed into the template


@pytest.mark.parametrize("flags,expected", [
    ({"avx512f", "avx512_bf16"}, "This CPU has AVX512-BF16 and no AMX"),
    ({"avx512f", "avx512_bf16", "amx_tile", "amx_bf16"}, "This CPU has AVX512-BF16 and AMX"),
    ({"avx2"}, "This CPU has no AVX512-BF16 and no AMX"),
])
def test_training_efficiency_reads_the_cpu_instead_of_stating_it(tmp_path, flags, expected):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: Test\nflags\t\t: fpu {' '.join(sorted(flags))}\n\n"
                       f"processor\t: 1\nflags\t\t: fpu {' '.join(sorted(flags))}\n")
    assert training_efficiency.cpu_flags(cpuinfo) == {"fpu", *flags}
    note = training_efficiency.bf16_note(training_efficiency.cpu_flags(cpuinfo), 1.48, 1.86)
    assert note.startswith(expected) and "1.48x" in note and "less than the bfloat16 matmul's 1.86x" in note
    assert training_efficiency.cpu_flags(tmp_path / "absent") is None
    assert "could not be read" in training_efficiency.bf16_note(None, 2.0, 1.5)


def test_training_efficiency_peak_note_is_this_runs():
    note = training_efficiency.peak_note([236.0, 471.5, 480.2, 251.9, 478.0])
    assert "236 to 480 GFLOP/s over 5 rounds (2 low-peak, 3 high-peak" in note
    source = (ROOT / "benchmarks" / "training_efficiency.py").read_text()
    assert "240 or about 480" not in source and "This CPU has AVX512-BF16 but no AMX" not in source


def _string_constants(path: Path) -> list[str]:
    return [node.value for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Constant)
            and isinstance(node.value, str)]


def test_transfer_script_types_no_exploration_numbers():
    """Accuracies typed by hand (0.xx / 0.xxx inside the script's text) live in the dated exploration log instead."""
    texts = _string_constants(ROOT / "benchmarks" / "transfer.py")
    typed = [m for t in texts for m in re.findall(r"\b0\.\d{2,3}\b", t)]
    assert typed == []
    log = ROOT / "docs" / "exploration" / "transfer-2026.md"
    assert "docs/exploration/transfer-2026.md" in texts  # the script's sections point at the log
    moved = log.read_text()
    for figure in ("0.850 / 0.846 / 0.844", "0.76 / 0.77 / 0.82 at 64 / 96 / 128 px", "15-epoch scratch arm (0.71)"):
        assert figure in " ".join(moved.split())


def test_readme_figures_are_the_recorded_results(tmp_path):
    """Every README results block equals what benchmarks/readme_blocks.py copies from results/ now."""
    from benchmarks.readme_blocks import README, block_lines, sync_readme

    copy = tmp_path / "README.md"
    copy.write_text(README.read_text())
    names = sync_readme(copy)
    assert {"demo_fashion_mnist", "two_stage"} <= set(names)
    assert copy.read_text() == README.read_text(), "README figures drifted: run benchmarks/readme_blocks.py"
    rows = [line for line in block_lines("demo_fashion_mnist", False) if line.startswith("| ensemble of")]
    assert len(rows) == 1 and rows[0] in README.read_text()


def test_readme_block_without_its_result_is_refused(tmp_path):
    from benchmarks.readme_blocks import sync_readme

    readme = tmp_path / "README.md"
    readme.write_text("x\n<!-- results:no_such_benchmark -->\n<!-- results:no_such_benchmark end -->\n")
    with pytest.raises(FileNotFoundError):
        sync_readme(readme)
