"""Where a short ``convforge train`` spends its time: pyinstrument over the trainer's phases.

    .venv/bin/python benchmarks/profile_train.py        # ~1-4 minutes on 2 cores (one short run)

One short run of the Fashion-MNIST LeNet-5 recipe (``data.train_limit=3000``,
``data.test_limit=1000``, 2 epochs, the recipe's mirror augmentation) through
``tasks.trainer.train``, in-process, under pyinstrument (wall-clock sampling,
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
from tasks.recipe import load_recipe  # noqa: E402
from tasks.trainer import train  # noqa: E402

OVERRIDES = ["data.train_limit=3000", "data.test_limit=1000", "train.epochs=2"]

FINDINGS = """\
Findings (what the profile shows, and what was changed):

- **MLflow store creation**: a fresh SQLite store runs MLflow's schema migrations once (alembic); it is the
  largest single cost of a first run in a new folder and is paid once per store (timed above the table).
  Not changed (MLflow's own start-up); use one store per project (`mlflow.db`) or the team server.
- **Training step tracing** (`Function._initialize` inside `fit`): the first step traces and optimises the
  train function; for LeNet-5 it costs several steady epochs of this slice. See `first_step.md` for every recipe.
- **Augmentation map tracing** (`augment_batches` -> `Dataset.map` tracing inside `build_inputs`): tracing
  the per-batch augmentation function is a fixed cost comparable to the train-step trace even for `mirror`.
- **Figures** (`log_figures`): the augmentation preview and the PNG encoding of the curves/confusion matrix.
- **MLflow model logging** (`mlflow.keras.log_model`): importing MLflow's Keras flavour, saving the `.keras`
  file and resolving the pip requirements (`_process_pip_requirements`), even with explicit requirements.
- **Export** (`export_classifier`): tracing both signatures. The exported call itself is as fast as a direct
  Keras call (see `export_latency.md`): the `tf.cond` size check costs nothing measurable, and keeping a
  static shape after it (`tf.ensure_shape`) matters: the same function without it (unknown H, W inside the
  model) ran 1.7x slower in a side-by-side check, so it stays.
- **Mixed precision**: every registered builder now keeps its output layer in float32 (AlexNet, VGG,
  Inception, ResNet/1D/3D heads, the sliding-window classifier and the YOLO grid were not), the recipe's
  `train.precision` is validated and the global policy is reset after each run.
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
