"""The classic nets on real Fashion-MNIST: test accuracy, parameters, multiplies, training images/s.

    .venv/bin/python benchmarks/classic_nets.py                      # ~12 minutes on 2 cores
    .venv/bin/python benchmarks/classic_nets.py --nets resnet18 --seconds 0 --name classic_nets_resnet18

Each net is trained as its bundled recipe says (model and options, data
derivation for the 1D/3D nets, batch size, Adam, learning rate, cosine
schedule, mirroring), on the recipe's 90% training split of the real 60,000
images, but for at most ``--seconds`` of training per net (0 = the recipe's
full epochs), then scored on the first ``--test-limit`` real test images.
Inception v1 trains with its two auxiliary classifiers (loss weight 0.3) and is
scored and counted without them. Parameters and multiplies per example come
from ``models.conv_arithmetic.layer_table`` (multiplies: weight
multiply-accumulates of one forward pass). Training images/s is measured after
the first 5 steps (tracing excluded).

Uses Keras and NumPy only, so it also runs on the JAX backend
(``KERAS_BACKEND=jax``) where TensorFlow is not installed.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402

import models  # noqa: E402
from benchmarks.machine import RESULTS, cpu_model, gpu_name, table  # noqa: E402
from models.conv_arithmetic import layer_table  # noqa: E402
from models.inception import AUX_LOSS_WEIGHT, inference_model  # noqa: E402
from pipelines.catalog import load_arrays  # noqa: E402
from pipelines.derived import derive  # noqa: E402

NETS = ["lenet5", "alexnet", "vgg16", "resnet18", "resnet50", "inception_v1",
        "convnet1d", "resnet1d", "convnet3d", "resnet3d"]


class Clock(keras.callbacks.Callback):
    """Stops training after ``budget`` seconds (0 = never); times steps after the first ``skip``."""

    def __init__(self, budget: float, batch_size: int, skip: int = 5):
        super().__init__()
        self.budget, self.batch_size, self.skip = budget, batch_size, skip
        self.steps, self.start, self.timed_start, self.timed_steps, self.elapsed = 0, None, None, 0, 0.0

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        self.start = self.start or now
        self.steps += 1
        if self.steps == self.skip:
            self.timed_start = now
        elif self.steps > self.skip:
            self.timed_steps += 1
            self.elapsed = now - self.timed_start
        if self.budget and now - self.start > self.budget:
            self.model.stop_training = True

    def images_per_second(self) -> float:
        return self.timed_steps * self.batch_size / self.elapsed if self.timed_steps else float("nan")


def recipe_for(net: str) -> dict:
    return yaml.safe_load((ROOT / "tasks" / "recipes" / f"fashion_mnist_{net}.yaml").read_text())


def prepare(recipe: dict, data, test_limit: int):
    """Train (90% split, seeded like the recipe loader) and test arrays, derived if the recipe says so."""
    seed, frac = recipe.get("seed", 42), recipe["data"].get("val_fraction", 0.1)
    order = np.random.default_rng(seed).permutation(len(data.x_train))
    train_idx = order[int(round(len(order) * frac)):]
    limit = recipe["data"].get("train_limit")
    train_idx = train_idx[:limit] if limit else train_idx
    x, y = data.x_train[train_idx], data.y_train[train_idx]
    xt, yt = data.x_test[:test_limit], data.y_test[:test_limit]
    spec = recipe["data"].get("derive")
    if spec:
        (x, y), (xt, yt) = derive(spec, x, y), derive(spec, xt, yt)
    return x, y, xt, yt


def run_net(net: str, data, seconds: float, test_limit: int) -> list:
    recipe = recipe_for(net)
    spec, train = recipe["model"], recipe["train"]
    x, y, xt, yt = prepare(recipe, data, test_limit)
    keras.utils.set_random_seed(recipe.get("seed", 42))
    model = models.build(spec["name"], x.shape[1:], 10, **spec.get("options", {}))
    scored = inference_model(model)
    aux = isinstance(model.output, dict)
    trained = model
    if "mirror" in recipe["data"].get("augment", []):
        inputs = keras.Input(x.shape[1:], dtype="uint8")
        trained = keras.Model(inputs, model(keras.layers.RandomFlip("horizontal")(inputs)))
    steps = train["epochs"] * -(-len(x) // train["batch_size"])
    lr = train["learning_rate"]
    if train.get("schedule") == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(lr, steps)
    names = ["main", "aux1", "aux2"] if aux else None
    loss = {k: "sparse_categorical_crossentropy" for k in names} if aux else "sparse_categorical_crossentropy"
    weights = {"main": 1.0, "aux1": AUX_LOSS_WEIGHT, "aux2": AUX_LOSS_WEIGHT} if aux else None
    trained.compile(optimizer=keras.optimizers.Adam(lr), loss=loss, loss_weights=weights)
    clock = Clock(seconds, train["batch_size"])
    start = time.perf_counter()
    trained.fit(x, {k: y for k in names} if aux else y, batch_size=train["batch_size"], epochs=train["epochs"],
                callbacks=[clock], verbose=0)
    wall = time.perf_counter() - start
    probs = scored.predict(xt, batch_size=256, verbose=0)
    accuracy = float(np.mean(np.argmax(probs, axis=1) == yt))
    rows = layer_table(scored)
    per_epoch = -(-len(x) // train["batch_size"])
    seen = (clock.steps // per_epoch) * len(x) + (clock.steps % per_epoch) * train["batch_size"]
    print(f"{net}: acc {accuracy:.4f} after {seen:,} images in {wall:.0f} s", flush=True)
    return [net, "x".join(map(str, x.shape[1:])), f"{sum(r.params for r in rows):,}",
            f"{sum(r.multiplies for r in rows) / 1e6:.1f} M", f"{seen:,} ({seen / len(x):.2f})",
            f"{wall:.0f}", f"{clock.images_per_second():.0f}", f"{accuracy:.4f}"]


def machine_line() -> str:
    import datetime as dt

    gpu = gpu_name()
    return (f"{cpu_model()}, {os.cpu_count()} cores{', GPU ' + gpu if gpu else ', no GPU'}; Keras {keras.__version__} "
            f"({keras.backend.backend()} backend), Python {platform.python_version()}; {dt.date.today().isoformat()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="*", default=NETS, help=f"recipes to run (default: {' '.join(NETS)})")
    parser.add_argument("--seconds", type=float, default=60, help="training budget per net, 0 = full recipe epochs")
    parser.add_argument("--test-limit", type=int, default=10000, help="score on the first N test images")
    parser.add_argument("--name", default="classic_nets", help="results file name (benchmarks/results/NAME.md)")
    args = parser.parse_args()
    data = load_arrays("fashion_mnist")
    rows = [run_net(net, data, args.seconds, args.test_limit) for net in args.nets]
    header = ["net (recipe fashion_mnist_NET)", "input", "params (inference)", "multiplies / example",
              "training images seen (epochs)", "train s", "train img/s", f"test accuracy ({args.test_limit:,})"]
    budget = f"at most {args.seconds:.0f} s of training per net" if args.seconds else "the recipes' full epochs"
    command = "python benchmarks/classic_nets.py " + " ".join(sys.argv[1:])
    text = (f"## Classic nets on Fashion-MNIST\n\nMachine: {machine_line()}\n\nCommand: `{command.strip()}`\n\n"
            f"Each recipe trained for {budget}; test accuracy on real Fashion-MNIST test images.\n\n"
            f"{table(header, rows)}\n")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
