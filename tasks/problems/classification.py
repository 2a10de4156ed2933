"""Image classification: a softmax classifier over a catalog, folder or CSV dataset.

Recipe sections used: ``data`` (dataset, splits, size, augmentation), ``model``
(any registered builder), ``train``; ``evaluation.mode`` is read by the
multi-crop evaluator where present. Figures: training curves and the test
confusion matrix. Export: ``probabilities`` and ``class_id`` with class names
in the assets.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
import yaml

from pipelines.decode import decode_image
from pipelines.splits import batch, permuted_batches
from serving.export import export_classifier, export_tensor_classifier
from tasks.core.data_splits import load_splits_for
from tasks.core.errors import UserError
from tasks.core.task import RECIPE_ASSET, Inputs, Task, compile_model, register_task
from tasks.figures import plots


def collect_predictions(model: keras.Model, ds: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """One pass over a batched ``(images, labels)`` dataset -> (labels, probabilities)."""
    labels, probs = [], []
    predict = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    for x, y in ds:
        labels.append(y.numpy())
        out = predict(x)
        probs.append(np.asarray(out[0] if isinstance(out, (list, tuple)) else out, dtype=np.float32))
    return np.concatenate(labels), np.concatenate(probs)


def classification_metrics(labels: np.ndarray, probs: np.ndarray, prefix: str = "test_") -> dict[str, float]:
    """Accuracy and mean cross-entropy from labels ``[N]`` and probabilities ``[N, K]``."""
    picked = probs[np.arange(len(labels)), labels]
    return {
        f"{prefix}accuracy": float(np.mean(np.argmax(probs, axis=1) == labels)),
        f"{prefix}loss": float(np.mean(-np.log(np.clip(picked, 1e-7, 1.0)))),
    }


@register_task("classification")
class ClassificationTask(Task):
    """Softmax classification with sparse categorical cross-entropy."""

    defaults = {"data": {"test_fraction": 0.1}}

    def build_inputs(self) -> Inputs:
        data, seed = self.config.data, self.config.seed
        splits = load_splits_for(data, seed)
        if data.derive and data.augment:
            raise UserError("data.augment works on images; remove it or data.derive (sequences/clips are not augmented)")
        bs = self.recipe["train"]["batch_size"]
        return Inputs(
            train=self._train_batches(splits, bs, seed),
            val=batch(splits.val, bs) if splits.val is not None else None,
            test=batch(splits.test, bs) if splits.test is not None else None,
            input_shape=splits.input_shape,
            class_names=splits.class_names,
            info={"fingerprint": splits.fingerprint, "sizes": splits.sizes, "skipped": dict(splits.skipped)},
        )

    def _train_batches(self, splits, bs: int, seed: int):
        """Training batches: a full permutation per epoch for in-memory sets, a shuffle buffer for streamed ones."""
        transform = self._train_transform(splits)
        if splits.train_xy is not None:
            ds = permuted_batches(*splits.train_xy, bs, seed, splits.convert, transform)
            if self.recipe["data"]["service"]:  # workers share out the epoch: its length is theirs to tell
                return ds
            # flat_map forgets the length; without it Keras counts one phantom optimizer step per epoch
            return ds.apply(tf.data.experimental.assert_cardinality(-(-len(splits.train_xy[1]) // bs)))
        return batch(splits.train, bs, self.recipe["data"]["shuffle_buffer"], seed, training=True, transform=transform)

    def _train_transform(self, splits):
        """Per-batch augmentation (each image draws its own parameters), then the tf.data service if set."""
        from pipelines import augment, data_service
        from pipelines.augment_policy import needs_pca

        data = self.recipe["data"]
        policy, service = data["augment"], data["service"]
        try:
            augment.validate_policy(policy)
        except ValueError as err:
            raise UserError(f"data.augment: {err}") from None
        try:
            service_options = data_service.check_options(service) if service else None
        except (ValueError, TypeError) as err:
            raise UserError(f"data.service: {err}") from None
        pca = self._fit_pca(splits) if needs_pca(policy) else None

        def transform(ds):
            if policy:
                ds = augment.augment_batches(ds, policy, self.recipe["seed"], pca)
            if service_options:
                ds = data_service.distribute(ds, **service_options)
            return ds

        return transform

    def _fit_pca(self, splits):
        """AlexNet's PCA colour basis from the training images (logged with the run by ``log_figures``)."""
        from pipelines.pca_colour import fit_pca

        images = splits.train_xy[0] if splits.train_xy is not None and splits.convert is None else None
        if images is None:
            images = np.stack([x for x, _ in splits.train.take(2000).as_numpy_iterator()])
        try:
            self._pca = fit_pca(images)
        except ValueError as err:
            raise UserError(f"data.augment: {err}; set data.channels=3") from None
        return self._pca

    def build_losses(self):
        return keras.losses.SparseCategoricalCrossentropy()

    def build_metrics(self) -> list:
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    # Models with auxiliary side classifiers (Inception v1, aux=True) have dict outputs
    # {"main", "aux1", "aux2"}: every head gets the same labels, the side heads weigh AUX_LOSS_WEIGHT,
    # and only "main" is evaluated, logged and exported.
    def compile(self, model: keras.Model, inputs: Inputs | None = None) -> None:
        if not isinstance(model.output, dict):
            return super().compile(model, inputs)
        from models.inception import AUX_LOSS_WEIGHT

        keys = sorted(model.output)
        compile_model(
            model,
            optimizer=self.build_optimizer(self.batches_per_epoch(inputs)),
            loss={k: self.build_losses() for k in keys},
            loss_weights={k: 1.0 if k == "main" else AUX_LOSS_WEIGHT for k in keys},
            metrics={"main": self.build_metrics()},
        )

    def fit(self, model: keras.Model, inputs: Inputs, callbacks: list):
        if not isinstance(model.output, dict):
            return super().fit(model, inputs, callbacks)
        keys = sorted(model.output)

        def per_head(ds):
            return None if ds is None else ds.map(lambda x, y: (x, {k: y for k in keys}))

        heads = Inputs(per_head(inputs.train), per_head(inputs.val), None, inputs.input_shape, inputs.class_names, inputs.info)
        return super().fit(model, heads, callbacks)

    def inference_model(self, model: keras.Model) -> keras.Model:
        if isinstance(model.output, dict):
            from models.inception import inference_model

            return inference_model(model)
        return model

    def evaluate(self, model: keras.Model, inputs: Inputs) -> dict[str, float]:
        if inputs.test is None:
            return {}
        self._labels, self._probs = collect_predictions(self.inference_model(model), inputs.test)
        return classification_metrics(self._labels, self._probs)

    def log_figures(self, model, inputs, history, out_dir: Path) -> list[Path]:
        out = []
        if getattr(self, "_pca", None) is not None:
            self.tracker("log_artifact", str(self._pca.save(out_dir / "pca_colour.json")))
        if self.recipe["data"]["augment"]:
            from tasks.figures.augment_preview import write_preview

            out.append(write_preview(self.recipe, out_dir / "augment_preview.png"))
        if history:
            out.append(plots.save(plots.training_curves(history), out_dir / "training_curves.png"))
        if getattr(self, "_probs", None) is not None:
            fig = plots.confusion_matrix(self._labels, self._probs.argmax(axis=1), inputs.class_names)
            out.append(plots.save(fig, out_dir / "confusion_matrix.png"))
        return out

    def export(self, model, inputs, root, name) -> Path:
        model = self.inference_model(model)
        assets = {RECIPE_ASSET: yaml.safe_dump(self.recipe, sort_keys=False)}
        if len(model.input_shape) != 4:  # 1D sequences / 3D clips: the raw tensor in, no image decoding
            return export_tensor_classifier(model, root, name, inputs.class_names, assets)
        return export_classifier(model, root, name, inputs.class_names, assets, decode=decode_image)
