"""Transfer learning: a pretrained backbone, a new softmax head, and a freeze/unfreeze schedule.

The notes' recipe: take a network trained on related data, freeze it, train a
new softmax layer; optionally store the frozen activations once and train only
the head on them; if that is not enough, unfreeze the deeper blocks stage by
stage with lower learning rates.

Recipe (``task: transfer``)::

    model: {name: transfer_classifier,
            options: {backbone: efficientnet_lite0, weights: imagenet, dropout: 0.2}}
    transfer:
      cache_activations: true          # head-only stages train on cached features
      stages:
        - {train: head, epochs: 5, learning_rate: 0.001}
        - {train: top_k, k: 3, epochs: 3, learning_rate: 0.0001}
        - {train: all, epochs: 2, learning_rate: 0.00001, optimizer: sgd, keep_best: true}
        - {train: all, epochs: 40, learning_rate: 0.0001, schedule: cosine}
    evaluation: {mode: 10crop}         # single | 1crop | 3crop | 10crop

``weights`` may also be ``run:<MLflow run id>`` (that run's model) or an export
folder (``exports/<name>[/<version>]``): the backbone continues from them.

The backbone is called with ``training=False`` (``models.backbones``), so its
batch norms keep their ImageNet statistics in every stage; frozen layers get
``trainable = False``, so their weights do not move. The whole schedule is the
trainer's MLflow run (the parent) with one nested run per stage; the console
prints ``stage i/n: ...`` as each starts. ``keep_best: true`` ends a stage with
the weights of its epoch of best validation accuracy (``keep_best_callback``);
``schedule: cosine`` decays the stage's learning rate to 0 over its epochs
(default: the ``train.schedule`` of the recipe).
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import keras
import numpy as np
import yaml

from pipelines.decode import decode_image
from pipelines.splits import batch
from serving.export import CLASS_NAMES_FILE, export_classifier, export_image_model
from tasks.core.activation_cache import cached_features, feature_dataset
from tasks.core.checkpoints import IntervalBackup
from tasks.core.data_splits import load_splits_for
from tasks.core.errors import UserError
from tasks.core.runs import download_artifact
from tasks.core.task import RECIPE_ASSET, Inputs, compile_model, make_optimizer, progress_verbosity, register_task
from tasks.evaluation.multicrop import MODES, collect_multicrop, multicrop_probabilities
from tasks.problems.classification import ClassificationTask, classification_metrics, collect_predictions

STAGE_KEYS = {"train", "k", "epochs", "learning_rate", "optimizer", "weight_decay", "keep_best", "schedule"}
SCHEDULES = ("constant", "cosine")
FIX = "pass a local file with --set model.options.weights=PATH"


def parse_stages(stages: list, train_defaults: dict) -> list[dict]:
    """Validate ``transfer.stages`` and fill each stage's defaults from the ``train`` section."""
    if not stages:
        raise UserError("transfer.stages is empty; give at least one stage, e.g. [{train: head, epochs: 5}]")
    out = []
    for i, raw in enumerate(stages, start=1):
        where = f"transfer.stages[{i}]"
        if not isinstance(raw, dict):
            raise UserError(f"{where} must be a mapping like {{train: head, epochs: 3}}; received {raw!r}")
        unknown = set(raw) - STAGE_KEYS
        if unknown:
            raise UserError(f"{where} has unknown key(s) {sorted(unknown)}; known: {', '.join(sorted(STAGE_KEYS))}")
        stage = {"train": raw.get("train", "head"), "k": raw.get("k"), "epochs": raw.get("epochs", train_defaults["epochs"]),
                 "learning_rate": float(raw.get("learning_rate", train_defaults["learning_rate"])),
                 "optimizer": raw.get("optimizer", train_defaults["optimizer"]),
                 "weight_decay": float(raw.get("weight_decay", train_defaults["weight_decay"])),
                 "keep_best": raw.get("keep_best", False), "schedule": raw.get("schedule", train_defaults.get("schedule", "constant"))}
        if stage["train"] not in ("head", "top_k", "all"):
            raise UserError(f"{where}.train must be head, top_k or all; received {stage['train']!r}")
        if stage["train"] == "top_k" and (not isinstance(stage["k"], int) or stage["k"] < 1):
            raise UserError(f"{where}: train: top_k needs k, a positive number of blocks; received k={stage['k']!r}")
        if not isinstance(stage["epochs"], int) or stage["epochs"] < 1:
            raise UserError(f"{where}.epochs must be a positive integer; received {stage['epochs']!r}")
        if not isinstance(stage["keep_best"], bool):
            raise UserError(f"{where}.keep_best must be true or false; received {stage['keep_best']!r}")
        if stage["schedule"] not in SCHEDULES:
            raise UserError(f"{where}.schedule must be constant or cosine; received {stage['schedule']!r}")
        out.append(stage)
    return out


def set_trainable(backbone: keras.Model, head: keras.Model, blocks: list[list[str]], stage: dict) -> list[str]:
    """Freeze/unfreeze for ``stage``; returns the names of the backbone layers that train."""
    head.trainable = True
    if stage["train"] == "head":
        backbone.trainable = False
        return []
    backbone.trainable = True
    if stage["train"] == "all":
        return [name for group in blocks for name in group]
    unfrozen = {name for group in blocks[-stage["k"]:] for name in group}
    for layer in backbone.layers:
        layer.trainable = layer.name in unfrozen
    return sorted(unfrozen)


def keep_best_callback(epochs: int) -> keras.callbacks.EarlyStopping:
    """Never stops early; at the end of ``fit`` restores the weights of the epoch of best ``val_accuracy``.

    Its ``best_epoch`` (0-based) and ``best`` say which epoch and what accuracy.
    """
    return keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=epochs + 1, restore_best_weights=True)


class EpochTimer(keras.callbacks.Callback):
    """Wall-clock seconds of each training epoch (validation excluded where Keras allows)."""

    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def _stage_callbacks(callbacks: list, index: int) -> list:
    """The trainer's callbacks, with a resume folder of its own per stage."""
    out = []
    for cb in callbacks:
        if isinstance(cb, IntervalBackup):
            cb = cb.with_dir(str(Path(cb.backup_dir) / f"stage{index}"))
        out.append(cb)
    return out


def _resume_dir(callbacks: list) -> Path | None:
    """The trainer's resume folder (its ``BackupAndRestore`` backup_dir), if any."""
    for cb in callbacks:
        if isinstance(cb, keras.callbacks.BackupAndRestore):
            path = Path(cb.backup_dir)
            path.mkdir(parents=True, exist_ok=True)
            return path
    return None


def _finished_stages(resume: Path | None, model: keras.Model, n: int) -> int:
    """How many stages a previous, interrupted run finished; loads the last one's weights."""
    done = [i for i in range(1, n + 1) if resume and (resume / f"stage{i}.done.weights.h5").is_file()]
    if not done:
        return 0
    model.load_weights(resume / f"stage{done[-1]}.done.weights.h5")
    return done[-1]


@register_task("transfer")
class TransferTask(ClassificationTask):
    """Backbone + head classifier trained by a freeze/unfreeze schedule (see module docstring)."""

    defaults = {
        "data": {"test_fraction": 0.1},
        "model": {"name": "transfer_classifier"},
        "transfer": {"stages": [{"train": "head", "epochs": 3}], "cache_activations": True, "cache_dir": "cache/activations"},
        "evaluation": {"mode": "single", "crop_fraction": 0.875, "export_multicrop": False},
    }

    # -- data --------------------------------------------------------------------
    def build_inputs(self) -> Inputs:
        """As for classification; images from files default to the backbone's own input size, in RGB.

        So ``convforge train transfer_folder --set data.dataset=folder:PATH`` needs
        nothing else: class names come from the subfolders, the size from the
        backbone (224 for EfficientNet-Lite0), channels 3. The resolved values
        are written into the recipe, so MLflow logs what ran.
        """
        from models.backbones import native_input_size

        data = self.recipe["data"]
        if str(data["dataset"]).startswith(("folder:", "csv:")):
            size = native_input_size(self.recipe["model"]["options"].get("backbone", "efficientnet_lite0"))
            if data["image_size"] is None and size:
                data["image_size"] = [size, size]
            if data["channels"] is None:
                data["channels"] = 3
        return super().build_inputs()

    # -- model -------------------------------------------------------------------
    def model_options(self, inputs: Inputs) -> dict:
        options = super().model_options(inputs)
        if "weights" in options:
            options["weights"] = self.resolve_weights(options["weights"])
        return options

    def finish_model(self, model: keras.Model, inputs: Inputs) -> keras.Model:
        names = {layer.name for layer in model.layers}
        if not {"backbone", "head"} <= names:
            raise UserError("task transfer needs a model with 'backbone' and 'head' parts; use model.name: transfer_classifier")
        return model

    def resolve_weights(self, weights):
        """``run:<id>`` -> that run's ``.keras`` file; an export folder -> a ``.keras`` rebuilt from it."""
        if not isinstance(weights, str):
            return weights
        if weights.startswith("run:"):
            return str(keras_file_of_run(weights[4:]))
        if Path(weights).is_dir():
            return str(keras_file_of_export(Path(weights), Path(self.recipe["transfer"]["cache_dir"]).parent / "from_exports"))
        return weights

    # -- training ----------------------------------------------------------------
    def fit(self, model: keras.Model, inputs: Inputs, callbacks: list) -> keras.callbacks.History:
        from models.backbones import backbone_blocks, backbone_of

        stages = parse_stages(self.recipe["transfer"]["stages"], self.recipe["train"])
        backbone, head = backbone_of(model), model.get_layer("head")
        blocks = backbone_blocks(backbone, self.recipe["model"]["options"].get("backbone", "efficientnet_lite0"))
        combined = keras.callbacks.History()
        combined.history = {}
        resume = _resume_dir(callbacks)
        finished = _finished_stages(resume, model, len(stages))
        for i, stage in enumerate(stages, start=1):
            if i <= finished:
                print(f"stage {i}/{len(stages)}: finished before the interruption, resuming after it", flush=True)
                continue
            unfrozen = set_trainable(backbone, head, blocks, stage)
            what = {"head": "head only", "all": "all layers"}.get(stage["train"], f"top {stage['k']} of {len(blocks)} blocks + head")
            cached = stage["train"] == "head" and self.recipe["transfer"]["cache_activations"]
            print(f"stage {i}/{len(stages)}: train {what}{' on cached activations' if cached else ''}, "
                  f"{stage['epochs']} epoch(s), {stage['optimizer']} lr={stage['learning_rate']:g}"
                  f"{' cosine-decayed to 0' if stage['schedule'] == 'cosine' else ''}", flush=True)
            timer = EpochTimer()
            stage_run = resume / f"stage{i}.mlflow_run_id" if resume else None
            log = self.tracker  # the run lifecycle's: an outage queues the stage runs with the rest
            with log.run(run_id=stage_run.read_text().strip() if stage_run and stage_run.is_file() else None,
                         run_name=f"stage{i}-{stage['train']}", nested=True) as child_id:
                if stage_run:
                    stage_run.write_text(child_id)
                log("log_params", {**{f"stage.{k}": v for k, v in stage.items()}, "stage.index": i,
                                    "stage.cached": cached, "stage.unfrozen_layers": len(unfrozen)})
                cbs = _stage_callbacks(callbacks, i) + [timer]
                if stage["keep_best"] and inputs.val is not None:
                    cbs.append(keep_best_callback(stage["epochs"]))
                elif stage["keep_best"]:
                    print("  note: keep_best needs a validation split (data.val_fraction > 0); keeping the last epoch", flush=True)
                if cached:
                    history = self._fit_head_cached(backbone, head, inputs, stage, cbs, f"transfer.stages[{i}]")
                else:
                    data = self.fit_data(inputs)
                    optimizer = make_optimizer(stage, data["steps_per_epoch"], f"transfer.stages[{i}]")
                    compile_model(model, optimizer=optimizer, loss=self.build_losses(), metrics=self.build_metrics())
                    history = model.fit(**data, epochs=stage["epochs"], callbacks=cbs,
                                        shuffle=False, verbose=progress_verbosity())
                if timer.seconds:
                    log("log_metric", "seconds_per_epoch", float(np.median(timer.seconds)))
            last = {f"stage{i}_{k}": float(v[-1]) for k, v in history.history.items() if v}
            log("log_metrics", {**last, f"stage{i}_seconds_per_epoch": float(np.median(timer.seconds or [0.0]))})
            for key, values in history.history.items():
                combined.history.setdefault(key, []).extend(values)
            if resume:  # a rerun after a crash continues with the next stage from these weights
                tmp = resume / f".stage{i}.tmp.weights.h5"
                model.save_weights(tmp)
                os.replace(tmp, resume / f"stage{i}.done.weights.h5")
        return combined

    def _fit_head_cached(self, backbone, head, inputs: Inputs, stage: dict, callbacks: list, where: str):
        data, bs = self.recipe["data"], self.recipe["train"]["batch_size"]
        if data["augment"]:
            print("note: cached activations are computed from un-augmented images", flush=True)
        key = {"dataset": data["dataset"], "fingerprint": inputs.info.get("fingerprint"), "sizes": inputs.info.get("sizes"),
               "seed": self.recipe["seed"], "val_fraction": data["val_fraction"], "test_fraction": data.get("test_fraction"),
               "train_limit": data["train_limit"], "image_size": data["image_size"], "channels": data["channels"]}
        cache_dir = self.recipe["transfer"]["cache_dir"]
        train = cached_features(backbone, self._plain_train(inputs), key, cache_dir, "train")
        val = cached_features(backbone, inputs.val, key, cache_dir, "val") if inputs.val is not None else None
        self.tracker("log_metrics", {"cache_hit": float(not train.rebuilt), "cache_seconds": train.seconds + (val.seconds if val else 0.0)})
        source = f"computed in {train.seconds:.1f} s" if train.rebuilt else "from cache"
        print(f"  activations: {train.features.shape[0]} x {train.features.shape[1]} ({source}) {train.path.parent}", flush=True)
        batches = -(-train.features.shape[0] // bs)  # every cached image once per epoch, whatever train.steps_per_epoch says
        compile_model(head, optimizer=make_optimizer(stage, batches, where), loss=self.build_losses(), metrics=self.build_metrics())
        return head.fit(feature_dataset(train, bs, shuffle=True, seed=self.recipe["seed"]),
                        validation_data=feature_dataset(val, bs) if val else None, epochs=stage["epochs"],
                        callbacks=callbacks, shuffle=False, verbose=progress_verbosity())

    def _plain_train(self, inputs: Inputs):
        """The training images without augmentation (batched), for the activation cache."""
        data = self.recipe["data"]
        if not data["augment"]:
            return inputs.train
        splits = load_splits_for(self.config.data, self.config.seed)
        return batch(splits.train, self.config.train.batch_size)

    # -- evaluation and export -----------------------------------------------------
    def evaluate(self, model: keras.Model, inputs: Inputs) -> dict[str, float]:
        if inputs.test is None:
            return {}
        mode, fraction = self.recipe["evaluation"]["mode"], self.recipe["evaluation"]["crop_fraction"]
        if mode not in MODES:
            raise UserError(f"evaluation.mode {mode!r} is unknown; choose one of: {', '.join(MODES)}")
        labels, single = collect_predictions(model, inputs.test)
        metrics = classification_metrics(labels, single)
        if mode != "single":
            print(f"evaluating {mode} on the test split", flush=True)
            labels, probs = collect_multicrop(model, inputs.test, mode, fraction)
            metrics = {**classification_metrics(labels, probs), **classification_metrics(labels, single, "test_single_")}
        else:
            probs = single
        self._labels, self._probs = labels, probs
        return metrics

    def export(self, model, inputs, root, name) -> Path:
        ev = self.recipe["evaluation"]
        assets = {RECIPE_ASSET: yaml.safe_dump(self.recipe, sort_keys=False)}
        if ev["mode"] in ("single",) or not ev["export_multicrop"]:
            return export_classifier(model, root, name, inputs.class_names, assets, decode=decode_image)
        return export_with_multicrop(model, root, name, inputs.class_names, ev["mode"], ev["crop_fraction"], assets)


def export_with_multicrop(model, root, name, class_names, mode: str, crop_fraction: float, assets: dict | None = None) -> Path:
    """Export ``probabilities``/``class_id`` plus ``multicrop_probabilities``/``multicrop_class_id``."""
    import tensorflow as tf

    h, w, c = model.input_shape[1:4]

    def serve(images):
        probs = tf.cast(model(images, training=False), tf.float32)
        multi = multicrop_probabilities(lambda x: model(x, training=False), images, mode, crop_fraction)
        return {"probabilities": probs, "class_id": tf.argmax(probs, axis=-1, output_type=tf.int32),
                "multicrop_probabilities": multi, "multicrop_class_id": tf.argmax(multi, axis=-1, output_type=tf.int32)}

    files = {CLASS_NAMES_FILE: "\n".join(class_names) + "\n", **(assets or {})}
    return export_image_model(serve, model, root, name, (h, w), c, files, decode=decode_image)


def keras_file_of_run(run_id: str) -> Path:
    """The ``.keras`` model file a finished training run logged (downloaded from MLflow)."""
    try:
        local = download_artifact(run_id, "model")
    except Exception as err:  # MlflowException, OSError ...
        raise UserError(f"model.options.weights run:{run_id}: no model in that MLflow run ({type(err).__name__}); "
                        f"check the id (mlflow ui) or {FIX}") from None
    files = sorted(local.rglob("*.keras"))
    if not files:
        raise UserError(f"model.options.weights run:{run_id}: the run's model has no .keras file; {FIX}")
    return files[0]


def keras_file_of_export(path: Path, out_dir: Path) -> Path:
    """Rebuild the Keras model of a convforge export from its recipe and copy its variables in by name."""
    import tensorflow as tf

    from models import build
    from serving.export import read_class_names
    from serving.loader import resolve_export

    try:
        version = resolve_export(path)
    except FileNotFoundError as err:
        raise UserError(f"model.options.weights {path}: {err}; {FIX}") from None
    recipe_file = version / "assets" / RECIPE_ASSET
    if not recipe_file.is_file():
        raise UserError(f"model.options.weights {version}: the export carries no recipe; use run:<id> or {FIX}")
    recipe = yaml.safe_load(recipe_file.read_text())
    data, spec = recipe["data"], recipe["model"]
    shape = load_splits_for(data, recipe["seed"], val_fraction=0.0, test_fraction=0.0, train_limit=1, test_limit=1).input_shape
    options = {**spec.get("options", {}), **({"weights": None} if "weights" in spec.get("options", {}) else {})}
    model = build(spec["name"], shape, len(read_class_names(version)), **options)
    served = {v.name.split(":")[0]: v for v in tf.saved_model.load(str(version)).variables}
    missing = [w.path for w in model.weights if w.path not in served]
    if missing:
        raise UserError(f"model.options.weights {version}: export variables do not fit {spec['name']} ({missing[:2]}...); {FIX}")
    for w in model.weights:
        w.assign(served[w.path].numpy())
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{hashlib.sha256(str(version.resolve()).encode()).hexdigest()[:16]}.keras"
    model.save(target)
    return target

