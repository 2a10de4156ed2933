"""Where a short ``convforge train`` spends its time: pyinstrument over the trainer's phases.

    .venv/bin/python benchmarks/profile_train.py        # ~1-4 minutes on 2 cores (one short run)

One short run of the Fashion-MNIST LeNet-5 recipe (``data.train_limit=3000``,
``data.test_limit=1000``, 2 epochs, the recipe's mirror augmentation) through
``tasks.core.trainer.train``, in-process, under pyinstrument (wall-clock sampling,
5 ms). The MLflow SQLite store is created (its one-time schema migration
timed) before profiling. The table lists the trainer's phases (the children
of the trainer's run function) with wall seconds, share of the run, and the
largest callee inside each. The findings below the table were read from this
profile and from ``tf.profiler`` traces of the same run.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyinstrument import Profiler  # noqa: E402

from benchmarks.machine import table, write_section  # noqa: E402
from benchmarks.peak import load_note  # noqa: E402
from tasks.core.recipe import load_recipe  # noqa: E402
from tasks.core.trainer import train  # noqa: E402

OVERRIDES = ["data.train_limit=3000", "data.test_limit=1000", "train.epochs=2"]

FINDINGS = """\
Findings (read from this profile, from side-by-side checks with process CPU time, and from `first_step.md`):

- **Fixed costs dominate a short run**: training itself (`fit`) is about a quarter of this run; the rest is
  the augmentation-map tracing in `build_inputs` (`augment_batches` -> `Dataset.map` traces the per-batch
  augmentation function, a cost comparable to the train-step trace even for `mirror`), the figures in
  `log_figures` (the augmentation preview is the largest part, then PNG encoding of the curves and
  confusion matrix), MLflow model logging (importing MLflow's Keras flavour, saving the `.keras` file,
  resolving pip requirements even when they are given), export (tracing both signatures) and evaluation.
  These are per run, not per epoch: at 24 epochs of the full 60k recipe they are a few percent.
- **MLflow store creation**: a fresh SQLite store runs MLflow's schema migrations once (timed above the
  table, excluded from it); paid once per store.
- **Training step tracing** (`Function._initialize` in `fit`): LeNet-5's first step costs ~130 steady steps
  of CPU. A cProfile of the first `train_on_batch` showed the step traced TWICE: Keras (TF backend, no
  distribution strategy) creates an unbuilt optimizer's variables inside the first trace, and `tf.function`
  retraces a function that created variables; the optimizer's `apply_gradients` was ~45% of the trace.
  Fixed: `tasks.core.task.compile_model` builds the optimizer at compile time, so the step is traced once (see
  `first_step.md` for every recipe, side by side). Grappler is a smaller share (switching its meta-optimizer
  off saved ~25% of a ResNet-18 first step, with no steady-state loss measurable here; left on, since its
  remapper fuses oneDNN ops). The rest is Keras/TF Python tracing, which grows with the layer count.
- **Per-epoch overhead against a bare fit** (see `overhead.md`): measured separately with CPU time, the
  uncached, reshuffled `tf.data` pipeline costs ~4% of a LeNet-5 epoch and the `BackupAndRestore`
  checkpoint ~3% (23 ms per epoch: an HDF5 weights file plus a copy of the previous one); the NaN guard's
  per-batch loss check costs nothing measurable (1.4 ms per epoch), the per-epoch MLflow metrics ~6 ms.
  Fixed: the resume checkpoint is written at an epoch end at most every `train.backup_interval_s` seconds
  (default 30; `tasks.core.checkpoints.IntervalBackup`), so a crash loses at most that much work plus one epoch.
- **Export**: the exported call is as fast as a direct Keras call (see `export_latency.md`); the `tf.cond`
  size check costs nothing measurable and the static shape after it (`tf.ensure_shape`) matters: without it
  (unknown H, W inside the model) the same function ran ~1.7x slower in a side-by-side check. Unchanged.
- **Batch norm in ResNet-class training steps** (`training_efficiency.md`): Keras 3's `BatchNormalization`
  runs the batch moments and the normalisation as separate ops forward and backward, and under
  mixed_bfloat16 casts every activation to float32 and back around them. Fixed:
  `models.fused_batch_norm.FusedBatchNormalization` (TensorFlow's fused kernel; Keras' weights, config and
  frozen behaviour) in the ResNet, Inception, EfficientNet-Lite0 and YOLO nets. Side by side on ResNet-50 steps: 1.19x
  the throughput in float32, 1.47x with mixed_bfloat16; the first step traces faster too.

Changed: every registered builder keeps its output layer in float32 under a mixed policy (AlexNet, VGG,
Inception, the ResNet/1D/3D heads, the sliding-window classifier and the YOLO grid did not);
`train.precision` is validated and the global policy is reset after each run; the optimizer is built at
compile time (one trace instead of two); resume checkpoints are time-throttled; batch norm runs fused. Not changed here (other
modules' code, proposed to their owners): trace the augmentation function once per policy, make the
augmentation preview optional for short runs, and log the model without MLflow's requirement resolution.
"""


def phase_rows(session) -> list[list]:
    """Children of the trainer's ``_train`` frame: name, seconds, share, largest callee."""
    root = session.root_frame()
    stack, run = [root], None
    while stack:
        frame = stack.pop()
        if frame.function == "_train" and "trainer" in (frame.file_path or ""):
            run = frame
            break
        stack.extend(frame.children)
    if run is None:
        return []
    rows = []
    for child in sorted(run.children, key=lambda f: -f.time)[:10]:
        inner = max(child.children, key=lambda f: f.time, default=None)
        where = f"{inner.function} ({inner.time:.1f} s)" if inner is not None else ""
        rows.append([f"`{child.function}`", f"{child.time:.1f}", f"{child.time / run.time:.0%}", where])
    rows.append(["whole `train()`", f"{run.time:.1f}", "100%", ""])
    return rows


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
        import mlflow

        start = time.perf_counter()
        mlflow.set_experiment("convforge")
        store_s = time.perf_counter() - start
        recipe = load_recipe("fashion_mnist_lenet5", OVERRIDES)
        profiler = Profiler(interval=0.005)
        profiler.start()
        train(recipe, tmp)
        session = profiler.stop()
    rows = phase_rows(session)
    body = (f"Fresh MLflow SQLite store creation (schema migration, once per store): {store_s:.1f} s.\n\n"
            + table(["trainer phase", "wall s", "share", "largest callee"], rows)
            + f"\n\nOne run, wall {session.duration:.1f} s, CPU {session.cpu_time:.1f} s, under {load_note()} "
            "(wall times are stretched by the load; the shares are the comparable figures).\n\n" + FINDINGS)
    write_section("profile_train", "Profile of a short convforge train run (hot spots)",
                  ".venv/bin/python benchmarks/profile_train.py", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
