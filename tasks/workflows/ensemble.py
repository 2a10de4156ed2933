"""Ensembles: average the output probabilities of N independently trained models (never their weights).

``ensemble_model`` wraps the members in one Keras model whose output is the
mean of their softmax outputs, so evaluation and export treat it like any
classifier. ``evaluate_runs`` loads finished MLflow runs, checks they agree
(classes and input shape), evaluates each member and the ensemble on the first
member's test split (optionally with multi-crop), and logs the result as a new
MLflow run.

Example:
    >>> model = ensemble_model([m1, m2, m3])
    >>> np.allclose(model.predict(x), (m1.predict(x) + m2.predict(x) + m3.predict(x)) / 3)
    True
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import yaml

from tasks.core.errors import UserError

MEMBERS_FILE = "ensemble_members.txt"  # the member run ids, shipped in the export's assets


def ensemble_model(members: list[keras.Model], name: str = "ensemble") -> keras.Model:
    """One model: the same input to every member, output the mean of their probabilities ``[N, K]``."""
    if not members:
        raise ValueError("an ensemble needs at least one member")
    shape, dtype = members[0].input_shape[1:], members[0].inputs[0].dtype
    for i, m in enumerate(members[1:], start=2):
        if m.input_shape[1:] != shape or m.output_shape[-1] != members[0].output_shape[-1]:
            raise ValueError(f"member {i} takes {m.input_shape[1:]} -> {m.output_shape[-1]} classes; "
                             f"member 1 takes {shape} -> {members[0].output_shape[-1]}")
    inputs = keras.Input(shape, dtype=dtype, name="image")
    outputs = []
    for i, m in enumerate(members, start=1):
        m.name = f"member{i}"  # nested models need unique names
        outputs.append(m(inputs, training=False))
    mean = keras.layers.Average(name="mean_probabilities", dtype="float32")(outputs) if len(outputs) > 1 else outputs[0]
    return keras.Model(inputs, mean, name=name)


@dataclass
class EnsembleResult:
    """What ``evaluate_runs`` measured.

    ``metrics``/``member_metrics`` are at the requested mode (``test_*``);
    when that mode is a multi-crop one, the same images at one crop are added
    with the prefix ``test_single_``, so one call compares 1 crop and N crops.
    """

    run_id: str | None
    metrics: dict[str, float]
    member_metrics: list[dict[str, float]]
    model: keras.Model
    recipe: dict
    class_names: list[str]
    run_ids: list[str] = field(default_factory=list)
    export_path: Path | None = None
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0))
    probabilities: np.ndarray = field(default_factory=lambda: np.zeros(0))
    tracker: object = None  # the tracking.SafeLogger that logged the run (``tag_run`` writes through it)

    def table(self, mode: str) -> list[tuple[str, float, float | None]]:
        """Rows ``(model, accuracy at 1 crop, accuracy at mode or None)``: each member, then the ensemble."""
        multi = mode not in ("single",)
        key = "test_single_accuracy" if multi else "test_accuracy"
        rows = [(f"member {i} (run {r[:8]})", m[key], m["test_accuracy"] if multi else None)
                for i, (r, m) in enumerate(zip(self.run_ids, self.member_metrics, strict=True), start=1)]
        rows.append((f"ensemble of {len(self.run_ids)}", self.metrics[key], self.metrics["test_accuracy"] if multi else None))
        return rows

    def markdown(self, mode: str) -> str:
        """``table(mode)`` as a Markdown table of test accuracy (a ``mode`` column only for multi-crop)."""
        rows = self.table(mode)
        multi = any(r[2] is not None for r in rows)
        lines = ["| model | 1 crop |" + (f" {mode} |" if multi else ""), "|---|---|" + ("---|" if multi else "")]
        for name, single, crops in rows:
            lines.append(f"| {name} | {single:.4f} |" + (f" {crops:.4f} |" if multi else ""))
        return "\n".join(lines)


def evaluate_runs(run_ids: list[str], mode: str = "single", overrides: list[str] | tuple = (), workdir: str | Path = ".",
                  crop_fraction: float = 0.875, log: bool = True) -> EnsembleResult:
    """Evaluate the runs and their probability average on the first run's test split; log one MLflow run.

    With a multi-crop ``mode`` the single-crop numbers come too (``test_single_*``).
    The MLflow run is nested under the caller's active run, if there is one.
    """
    from pipelines.splits import batch
    from tasks.core.data_splits import load_splits_for
    from tasks.core.recipe import load_recipe
    from tasks.core.runs import load_run
    from tasks.evaluation.multicrop import MODES, collect_multicrop
    from tasks.problems.classification import classification_metrics, collect_predictions

    if mode not in MODES:
        raise UserError(f"--mode {mode!r} is unknown; choose one of: {', '.join(MODES)}")
    if len(set(run_ids)) != len(run_ids):
        raise UserError("the same run id is given twice; an ensemble averages different runs")
    logged = [load_run(r, workdir) for r in run_ids]
    first = logged[0]
    for other in logged[1:]:
        if other.class_names != first.class_names or tuple(other.input_shape) != tuple(first.input_shape):
            raise UserError(f"run {other.run_id} has classes/input {other.class_names[:3]}... {other.input_shape}, "
                            f"run {first.run_id} has {first.class_names[:3]}... {first.input_shape}; ensemble runs of one dataset")
    recipe = load_recipe(first.recipe, overrides)
    data = recipe["data"]
    splits = load_splits_for(data, recipe["seed"], test_fraction=data.get("test_fraction", 0.1))
    test = batch(splits.test, 256)
    modes = ["single"] if mode == "single" else ["single", mode]
    probs = {m: [] for m in modes}
    labels = None
    for i, run in enumerate(logged, start=1):
        print(f"member {i}/{len(logged)}: run {run.run_id} ({' + '.join(modes)})", flush=True)
        for m in modes:
            labels, p = collect_predictions(run.model, test) if m == "single" else collect_multicrop(run.model, test, m, crop_fraction)
            probs[m].append(p)

    member_metrics = [{} for _ in logged]
    metrics: dict[str, float] = {}
    for m in modes:
        prefix = "test_" if m == mode else "test_single_"
        for i, p in enumerate(probs[m]):
            member_metrics[i].update(classification_metrics(labels, p, prefix))
        metrics.update(classification_metrics(labels, np.mean(probs[m], axis=0), prefix))
    best = max(m["test_accuracy"] for m in member_metrics)
    metrics["best_member_test_accuracy"] = best
    metrics["gain_over_best_member"] = metrics["test_accuracy"] - best
    model = ensemble_model([run.model for run in logged])
    result = EnsembleResult(None, metrics, member_metrics, model, recipe, first.class_names, list(run_ids),
                            labels=labels, probabilities=np.mean(probs[mode], axis=0))
    if log:
        from tasks.core import tracking

        result.tracker = tracking.SafeLogger(tracking.spill_dir(workdir, "ensemble"))
        result.run_id = _log(result, run_ids, mode)
    return result


def _log(result: EnsembleResult, run_ids: list[str], mode: str) -> str:
    """One MLflow run (nested under the caller's open run, if any) through the outage-safe logger."""
    log = result.tracker
    with log.run(run_name=f"ensemble-{len(run_ids)}-{mode}-{time.strftime('%Y%m%d-%H%M%S')}",
                 experiment=result.recipe["mlflow"]["experiment"]) as run_id:
        log("log_params", {"members": ",".join(run_ids), "ensemble.size": len(run_ids), "evaluation.mode": mode,
                           "data.dataset": result.recipe["data"]["dataset"]})
        log("set_tags", {"task": "ensemble", **{f"member{i}": r for i, r in enumerate(run_ids, start=1)}})
        log("log_metrics", result.metrics)
        for i, m in enumerate(result.member_metrics, start=1):
            log("log_metrics", {f"member{i}_{k}": v for k, v in m.items()})
        log("log_dict", {"members": run_ids, "mode": mode, "class_names": result.class_names}, "ensemble.json")
        return run_id


def tag_run(result: EnsembleResult, key: str, value: str) -> None:
    """Set one tag on the ensemble's logged run afterwards (``export_path``), outage-safe like the rest."""
    log = result.tracker
    with log.run(run_id=result.run_id):
        log("set_tag", key, value)


def export_ensemble(result: EnsembleResult, root: str | Path, name: str, mode: str = "single", crop_fraction: float = 0.875) -> Path:
    """Export the averaging model (``probabilities``, ``class_id``; multi-crop outputs too if ``mode`` asks)."""
    from pipelines.decode import decode_image
    from serving.export import export_classifier
    from tasks.core.task import RECIPE_ASSET
    from tasks.problems.transfer import export_with_multicrop

    assets = {RECIPE_ASSET: yaml.safe_dump(result.recipe, sort_keys=False), MEMBERS_FILE: "\n".join(result.run_ids) + "\n"}
    if mode == "single":
        return export_classifier(result.model, root, name, result.class_names, assets, decode=decode_image)
    return export_with_multicrop(result.model, root, name, result.class_names, mode, crop_fraction, assets)

