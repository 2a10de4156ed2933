"""Training on several devices or machines with tf.distribute (existing engines only).

Two paths, same recipes, same MLflow logging (one ``tasks.core.lifecycle.RunLifecycle``), same export:

- ``mirrored``: ``tf.distribute.MirroredStrategy`` on one host (all local GPUs,
  or N logical CPU devices). The normal trainer runs inside the strategy's
  scope, so training still goes through ``model.fit`` and its callbacks.
- ``multi-worker``: ``tf.distribute.MultiWorkerMirroredStrategy`` across
  processes/machines described by ``TF_CONFIG``. Keras 3 ``model.fit`` fails
  under it (keras-team/keras#20585), so ``train_multi_worker`` is a small custom
  loop: ``strategy.run`` of one step per replica, losses averaged over the
  GLOBAL batch with ``tf.nn.compute_average_loss`` (the task's optimizer
  all-reduces the gradients), the task's own metrics updated from the
  all-gathered predictions. The training set is sharded with
  ``AutoShardPolicy.DATA``: every worker reads the same seeded pipeline and
  keeps its own share of each global batch (``train.batch_size`` is the global
  batch size).

Only the chief (task ``chief``, or ``worker`` 0 when there is no chief) talks to
MLflow, evaluates, logs figures and the model, and exports. Checkpoints
(``tf.train.CheckpointManager``: model, optimizer, epoch) go to
``<workdir>/runs/<recipe-key>/checkpoint`` written by the chief; the other
workers save to a throw-away folder, as tf.distribute requires every worker to
save. Rerunning the same command on every worker resumes from the last finished
epoch in the same MLflow run (``workdir`` must then be a shared folder).

Example (two workers on one machine, one shell each)::

    TF_CONFIG='{"cluster": {"worker": ["127.0.0.1:20001", "127.0.0.1:20002"]},
                "task": {"type": "worker", "index": 0}}' convforge train fashion_mnist_lenet5 --distributed
    TF_CONFIG='{... "index": 1}}' convforge train fashion_mnist_lenet5 --distributed
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tasks.core import tracking
from tasks.core.errors import UserError
from tasks.core.lifecycle import RunLifecycle, TrainingDiverged
from tasks.core.task import Inputs, get_task_class
from tasks.core.trainer import TrainResult, precision_policy, recipe_key, train

KINDS = ("multi-worker", "mirrored")


def read_tf_config() -> dict:
    """The parsed ``TF_CONFIG`` (cluster + this task), refused with one clear line when unusable."""
    raw = os.environ.get("TF_CONFIG", "")
    if not raw:
        raise UserError("--distributed needs TF_CONFIG, e.g. "
                        '\'{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", "index": 0}}\'')
    try:
        config = json.loads(raw)
        kind, index = config["task"]["type"], int(config["task"]["index"])
        addresses = config["cluster"][kind]
        addresses[index]
    except (ValueError, KeyError, TypeError, IndexError):
        raise UserError(f"TF_CONFIG {raw[:200]!r} must name a cluster and this task's type and index within it") from None
    return config


def is_chief(config: dict) -> bool:
    """True for task ``chief``, or for ``worker`` 0 in a cluster without a chief."""
    task = config["task"]
    return task["type"] == "chief" or (task["type"] == "worker" and int(task["index"]) == 0 and "chief" not in config["cluster"])


def make_strategy(kind: str = "multi-worker", cpu_replicas: int | None = None) -> tf.distribute.Strategy:
    """Create the strategy; call this before any other TensorFlow work in the process.

    ``cpu_replicas`` (mirrored only) splits the CPU into that many logical devices
    when no GPU is present (useful to check replica arithmetic on a laptop).
    """
    if kind == "multi-worker":
        read_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    if kind != "mirrored":
        raise UserError(f"--distributed {kind!r} is unknown; use one of {', '.join(KINDS)}")
    if cpu_replicas and not tf.config.list_physical_devices("GPU"):
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_replicas)
        return tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])
    return tf.distribute.MirroredStrategy()


def train_distributed(recipe: dict, strategy: tf.distribute.Strategy, workdir: str | Path = ".") -> TrainResult:
    """Train ``recipe`` under ``strategy`` (from ``make_strategy``)."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return train_multi_worker(recipe, strategy, workdir)
    with strategy.scope():  # the model and optimizer capture the strategy; fit distributes the data
        return train(recipe, workdir)


def weights_digest(model: keras.Model) -> str:
    """SHA-256 of all weights' bytes in order: equal digests mean bit-identical weights."""
    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


def shard(ds: tf.data.Dataset, strategy: tf.distribute.Strategy, steps: int | None = None):
    """A globally batched dataset -> its distributed form, split by data (AutoShardPolicy.DATA)."""
    if steps:
        ds = ds.take(steps)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return strategy.experimental_distribute_dataset(ds.with_options(options))


def per_example_loss_fn(loss):
    """The task's loss as a per-example function ``(y, pred) -> [N]`` (no reduction)."""
    if isinstance(loss, keras.losses.Loss):
        return loss.call
    if callable(loss):
        return loss
    raise UserError("distributed training supports tasks with one loss (a keras.losses.Loss or a function); "
                    f"received {type(loss).__name__}")


def head_losses(model: keras.Model) -> dict:
    """``{output name or None: (per-example loss, weight)}`` of a compiled model.

    A model with named outputs (Inception v1's ``main`` + auxiliary heads)
    compiled with a loss per output uses the compile ``loss_weights`` (read
    from Keras' compile-loss object; 1.0 where it has none).
    """
    if isinstance(model.loss, dict):
        weights = getattr(getattr(model, "_compile_loss", None), "_user_loss_weights", None) or {}
        return {k: (per_example_loss_fn(v), float(weights.get(k, 1.0))) for k, v in model.loss.items()}
    return {None: (per_example_loss_fn(model.loss), 1.0)}


class _Loop:
    """The per-replica train/eval steps of one model under a MultiWorkerMirroredStrategy."""

    def __init__(self, strategy, model, metrics):
        self.strategy, self.model, self.metrics = strategy, model, metrics
        self.losses = head_losses(model)
        self.train_step = tf.function(lambda batch: self._step(batch, True))
        self.eval_step = tf.function(lambda batch: self._step(batch, False))

    def _replica(self, x, y, training):
        model = self.model
        with tf.GradientTape() as tape:
            out = model(x, training=training)
            heads = out if isinstance(out, dict) else {None: out}
            parts = {name: tf.nn.compute_average_loss(tf.cast(fn(y, heads[name]), tf.float32))
                     for name, (fn, _) in self.losses.items()}  # each: this replica's share of the global mean
            loss = tf.add_n([self.losses[name][1] * part for name, part in parts.items()])
            pred = out["main"] if isinstance(out, dict) else out  # metrics follow the inference output
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        if training:
            grads = tape.gradient(loss, model.trainable_variables)
            model.optimizer.apply_gradients(zip(grads, model.trainable_variables))  # noqa: B905 (autograph zip takes no strict=)
        local = tf.stack([tf.cast(tf.shape(y)[0], tf.float64), tf.reduce_sum(tf.cast(y, tf.float64))])
        named = {f"{name}_loss": part for name, part in parts.items() if name is not None}
        return {"loss": loss, **named}, y, tf.cast(pred, tf.float32), local

    def _step(self, batch, training):
        losses, y, pred, local = self.strategy.run(self._replica, args=(*batch, training))
        losses = {k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in losses.items()}
        local = tf.add_n(list(self.strategy.experimental_local_results(local)))
        return losses, self.strategy.gather(y, axis=0), self.strategy.gather(pred, axis=0), local

    def run_epoch(self, dist_ds, training: bool, epoch: int) -> tuple[dict[str, float], np.ndarray]:
        """One pass; returns (logs named as fit names them, this worker's [examples, label sum]).

        A multi-head model logs ``loss`` (weighted total), ``<head>_loss``
        (unweighted) and the metrics as ``main_<metric>``, as Keras does.
        """
        for m in self.metrics:
            m.reset_state()
        totals: dict[str, float] = {}
        count, local = 0, np.zeros(2)
        step_fn = self.train_step if training else self.eval_step
        for step, batch in enumerate(dist_ds):
            losses, y, pred, seen = step_fn(batch)
            n = int(tf.shape(y)[0])
            if training and not math.isfinite(float(losses["loss"])):
                raise TrainingDiverged(f"loss became {float(losses['loss'])} at epoch {epoch + 1}, step {step + 1}; "
                                       "lower train.learning_rate or check the data")
            for k, v in losses.items():
                totals[k] = totals.get(k, 0.0) + float(v) * n
            count, local = count + n, local + seen.numpy()
            for m in self.metrics:
                m.update_state(y, pred)
        logs = {k: v / max(count, 1) for k, v in totals.items()} if totals else {"loss": 0.0}
        prefix = "main_" if len(self.losses) > 1 else ""
        logs.update({f"{prefix}{m.name}": float(m.result()) for m in self.metrics})
        return logs, local


def train_multi_worker(recipe: dict, strategy: tf.distribute.MultiWorkerMirroredStrategy, workdir: str | Path = ".") -> TrainResult:
    """The recipe on every worker of ``TF_CONFIG``; the chief tracks, evaluates and exports."""
    with precision_policy(recipe):
        return _train_multi_worker(recipe, strategy, Path(workdir))


def _train_multi_worker(recipe: dict, strategy, workdir: Path) -> TrainResult:
    config = read_tf_config()
    chief, index = is_chief(config), int(config["task"]["index"])
    (tracking.preflight if chief else tracking.configure)(workdir)  # the chief alone talks to MLflow
    keras.utils.set_random_seed(recipe["seed"])
    task = get_task_class(recipe["task"])(recipe)
    state = workdir / "runs" / recipe_key(recipe)
    state.mkdir(parents=True, exist_ok=True)
    inputs = task.build_inputs()  # a bad dataset leaves no run behind, as in the trainer
    if not chief:
        export_path, metrics, history = _train_workers(recipe, task, inputs, strategy, state, None, index)
        return TrainResult("", export_path, metrics, history)
    with RunLifecycle(recipe, workdir, task, state, strategy.num_replicas_in_sync) as run:
        run.describe(inputs)
        export_path, metrics, history = _train_workers(recipe, task, inputs, strategy, state, run, index)
    return TrainResult(run.run_id, export_path, metrics, history)


def _train_workers(recipe, task, inputs: Inputs, strategy, state: Path, run: RunLifecycle | None, index: int):
    """The custom loop on every worker; the chief (``run`` given) logs epochs and finishes the run."""
    chief = run is not None
    with strategy.scope():
        model = task.build_model(inputs)
        task.compile(model, inputs)
        epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer, epoch=epoch_var)
    save_dir = state / "checkpoint" if chief else Path(tempfile.mkdtemp(prefix=f"worker{index}-", dir=state))
    manager = tf.train.CheckpointManager(checkpoint, str(save_dir), max_to_keep=1)
    latest = tf.train.latest_checkpoint(str(state / "checkpoint"))
    if latest:
        checkpoint.restore(latest)
        print(f"worker {index}: resuming after epoch {int(epoch_var.numpy())} from {latest}")
    loop = _Loop(strategy, model, task.build_metrics())
    steps = recipe["train"]["steps_per_epoch"]
    train_ds = shard(inputs.train, strategy, steps)
    val_ds = shard(inputs.val, strategy) if inputs.val is not None else None
    history: dict[str, list] = {}
    seen = np.zeros(2)
    epoch_callbacks = run.callbacks() if chief else []
    train_seconds = 0.0
    for epoch in range(int(epoch_var.numpy()), recipe["train"]["epochs"]):
        start = time.perf_counter()
        logs, local = loop.run_epoch(train_ds, True, epoch)
        epoch_seconds = time.perf_counter() - start
        train_seconds += epoch_seconds
        seen += local
        if val_ds is not None:
            val_logs, _ = loop.run_epoch(val_ds, False, epoch)
            logs.update({f"val_{k}": v for k, v in val_logs.items()})
        for k, v in logs.items():
            history.setdefault(k, []).append(v)
        print(f"worker {index} epoch {epoch + 1}/{recipe['train']['epochs']} ({epoch_seconds:.2f} s): "
              + " ".join(f"{k}={v:.4f}" for k, v in logs.items()), flush=True)
        for callback in epoch_callbacks:
            callback.on_epoch_end(epoch, logs)
        epoch_var.assign(epoch + 1)
        manager.save()
    if not chief:
        shutil.rmtree(save_dir, ignore_errors=True)
    print(f"worker {index}: trained on {int(seen[0])} examples (label sum {int(seen[1])}) in {train_seconds:.2f} s; "
          f"weights sha256 {weights_digest(model)}", flush=True)
    if not chief:
        return None, {}, history
    plain = _plain_copy(task, model, inputs)
    export_path, metrics = run.finish(plain, inputs, history)
    return export_path, metrics, history


def _plain_copy(task, model: keras.Model, inputs: Inputs) -> keras.Model:
    """A strategy-free copy of the trained model (weights and optimizer state) to evaluate, log and export."""
    plain = task.build_model(inputs)
    plain.set_weights(model.get_weights())
    task.compile(plain, inputs)
    plain.optimizer.build(plain.trainable_variables)  # carry the optimizer state too (logged with the model)
    for mine, trained in zip(plain.optimizer.variables, model.optimizer.variables, strict=True):
        mine.assign(trained.value)
    return plain
