"""First-step (tracing) time of every bundled recipe, against its steady step time.

    .venv/bin/python benchmarks/first_step.py [--budget 900]   # bounded: recipes not reached in --budget s are listed

For each ``tasks/recipes/*.yaml`` on a tiny slice (classification/transfer:
``data.train_limit=256``; scenes: 128 training scenes; 1 epoch of 4 steps):
the task's own ``build_inputs``/``build_model``/``compile``/``fit`` run in
this process, with one callback recording the time from ``on_train_begin`` to
the end of the first batch (iterator start + tracing + one step) and the
median of the later steps, in wall and in process CPU seconds (the machine is
shared: CPU time is the load-independent figure). ``first / steady`` (CPU)
says how many steady steps the tracing costs: where it exceeds an epoch's step count, tracing dominates a
short run of that recipe.

Each recipe is measured twice, side by side in the same process: as the
trainer runs it (``tasks.core.task.compile_model`` creates the optimizer's
variables at compile time, so the train step is traced once) and with Keras'
default (an unbuilt optimizer, whose variables are created inside the first
trace, so ``tf.function`` traces the step twice). The reduction column is the
ratio of the two first-step CPU times.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402

from benchmarks.machine import table, write_section  # noqa: E402
from benchmarks.peak import load_note  # noqa: E402
from tasks.core.recipe import load_recipe  # noqa: E402
from tasks.core.task import get_task_class  # noqa: E402

RECIPES = Path(__file__).resolve().parents[1] / "tasks" / "recipes"
COMMON = ["train.epochs=1", "train.steps_per_epoch=4"]
TINY = {
    "classification": ["data.train_limit=256", "data.test_limit=64"],
    "transfer": ["data.train_limit=256", "data.test_limit=64"],
    "faces": ["data.train_limit=512"],
    "localisation": ["scenes.train=128", "scenes.val=32", "scenes.test=32"],
    "detection": ["scenes.train=128", "scenes.val=32", "scenes.test=32"],
}


class StepTimer(keras.callbacks.Callback):
    """Wall and process-CPU seconds of the first batch (from ``on_train_begin``) and of each later batch."""

    def __init__(self):
        super().__init__()
        self.first: tuple[float, float] | None = None
        self.steps: list[tuple[float, float]] = []

    @staticmethod
    def _now() -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    def on_train_begin(self, logs=None):
        self._begin = self._now()

    def on_train_batch_begin(self, batch, logs=None):
        self._start = self._now()

    def on_train_batch_end(self, batch, logs=None):
        now = self._now()
        since = self._begin if self.first is None else self._start
        took = (now[0] - since[0], now[1] - since[1])
        if self.first is None:
            self.first = took
        else:
            self.steps.append(took)


def measure(name: str, prebuilt: bool = True) -> StepTimer:
    """Fit 4 steps of recipe ``name`` on a tiny slice; ``prebuilt=False`` swaps in an unbuilt optimizer (Keras' default)."""
    import yaml

    task_name = yaml.safe_load((RECIPES / f"{name}.yaml").read_text()).get("task", "classification")
    recipe = load_recipe(name, [*COMMON, *TINY.get(task_name, [])])
    recipe["train"]["steps_per_epoch"] = 4
    keras.backend.clear_session()
    keras.utils.set_random_seed(recipe["seed"])
    keras.mixed_precision.set_global_policy(recipe["train"]["precision"])
    try:
        task = get_task_class(recipe["task"])(recipe)
        inputs = task.build_inputs()
        inputs.val = None  # the validation trace is a second, separate cost; measured: the training step
        model = task.build_model(inputs)
        task.compile(model, inputs)
        swapped = None
        if not prebuilt and model.optimizer is not None:
            swapped = model.optimizer = keras.optimizers.deserialize(keras.optimizers.serialize(model.optimizer))
        timer = StepTimer()
        task.fit(model, inputs, [timer])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    timer.model_name = recipe["model"]["name"]
    timer.compiled_in_fit = prebuilt or model.optimizer is not swapped  # the task compiled (another) model inside fit
    return timer


def row(name: str) -> list:
    now, default = measure(name), measure(name, prebuilt=False)
    wall = statistics.median(w for w, _ in now.steps)
    cpu = statistics.median(c for _, c in now.steps)
    ratio = now.first[1] / cpu
    epoch = full_epoch_steps(name)
    share = f"{ratio / epoch:.0%} of {epoch} steps" if epoch else "n/a"
    before, gain = ("compiled in fit", "") if default.compiled_in_fit else (f"{default.first[1]:.2f}", f"{default.first[1] / now.first[1]:.2f}x")
    return [name, now.model_name, f"{now.first[0]:.1f}", f"{now.first[1]:.2f}", before, gain, f"{wall:.3f}", f"{cpu:.3f}",
            f"{ratio:.0f}", share]


def full_epoch_steps(name: str) -> int | None:
    """Steps in one epoch of the bundled recipe as written (catalog Fashion-MNIST classification/transfer only)."""
    recipe = load_recipe(name, [])
    data = recipe["data"]
    if recipe["task"] not in ("classification", "transfer") or data["dataset"] != "fashion_mnist":
        return recipe["train"]["steps_per_epoch"]
    n = data["train_limit"] or round(60000 * (1 - data["val_fraction"]))
    return recipe["train"]["steps_per_epoch"] or -(-n // recipe["train"]["batch_size"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=900, help="stop starting recipes after this many seconds")
    parser.add_argument("--only", nargs="*", help="recipe names")
    args = parser.parse_args(argv)
    names = args.only or sorted(p.stem for p in RECIPES.glob("*.yaml"))
    deadline = time.time() + args.budget
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # caches and checkpoints a task may write
        for name in names:
            if time.time() > deadline:
                rows.append([name, "", "not reached (budget)", "", "", "", "", "", "", ""])
                continue
            try:
                rows.append(row(name))
            except Exception as err:  # noqa: BLE001 - a recipe that cannot run here is reported, not fatal
                rows.append([name, "", f"not measured: {type(err).__name__}: {str(err).splitlines()[0][:90]}", "", "", "", "", "", "", ""])
            print(rows[-1], flush=True)
    body = (table(["recipe", "model", "first step wall s (trace + 1 step)", "first step CPU s",
                   "first step CPU s, Keras default (step traced twice)", "reduction", "steady step wall s",
                   "steady step CPU s", "first / steady (CPU)", "tracing vs one epoch of the full recipe"], rows)
            + f"\n\nTiny slices (see the script), 4 steps, measured in one process under {load_note()}: wall seconds "
            "are stretched by the load, process CPU seconds (all threads) much less, so the ratio uses CPU time. "
            "The last column is first / steady divided by the steps of one epoch of the recipe as bundled (n/a where "
            "the epoch length is not fixed by the recipe): above 100%, tracing costs more than a whole epoch. "
            "Reduction: Keras creates an unbuilt optimizer's variables inside the first traced step, and a "
            "`tf.function` that creates variables is traced twice; the trainer builds the optimizer at compile time "
            "(`tasks.core.task.compile_model`), so the step is traced once. Tasks that compile inside `fit` (transfer "
            "stages, the binary faces head) use `compile_model` there too and cannot be switched back here "
            "(\"compiled in fit\"). What remains is Keras/TF Python tracing, which grows with "
            "the layer count.")
    write_section("first_step", "First-step (tracing) time per recipe", ".venv/bin/python benchmarks/first_step.py", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
