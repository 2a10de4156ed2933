"""Faces: a metric-learning encoder for verification and one-shot recognition.

The encoder f (``models.embedding``) is trained so that images of one identity
land close together: with the triplet loss on P x K batches and online mining
(``faces.loss``: ``triplet_batch_hard``, ``triplet_semi_hard``,
``triplet_all``, ``triplet_random``), or with the binary head
sigmoid(sum_k w_k |f(x1)_k - f(x2)_k| + b) on same/different pairs
(``binary``; ``models.siamese``). Either way the exported model is the encoder.

Data: a catalog set (classes play identities) or ``folder:PATH`` with one
subfolder per identity (the LFW / VGGFace2 layout, images already face crops;
``convforge faces crop`` makes them from photos). Identities listed in
``faces.unseen_classes`` (or a ``faces.unseen_fraction`` of them) are held out
of training: the test set checks one-shot learning on people the encoder
never saw. The verification threshold is chosen at the equal-error rate on
validation pairs (new images of training identities), logged with its ROC
figure, and shipped in the export's ``assets/verification.json``.

Metrics: ``val_auc``/``val_eer``/``threshold`` (validation pairs),
``test_auc``/``test_eer``/``test_accuracy`` (unseen identities at the stored
threshold) and ``test_one_shot_accuracy`` (enrol one image per unseen
identity, identify all the others, averaged over draws).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
import yaml

from models.triplet_loss import TripletLoss
from pipelines.decode import decode_image
from pipelines.pk_sampler import eligible_classes, pk_batches
from serving.export import export_image_model
from serving.gallery import best_inner_product
from serving.verification import VERIFICATION_FILE, Verification, choose_threshold, pair_distances, pair_indices, roc
from tasks.core.errors import UserError, clean_message
from tasks.core.task import RECIPE_ASSET, Inputs, Task, compile_model, progress_verbosity, register_task

LOSSES = {
    "triplet_batch_hard": "batch_hard",
    "triplet_semi_hard": "semi_hard",
    "triplet_all": "all",
    "triplet_random": "random",
    "binary": None,
}


@dataclass
class Split:
    """Images (uint8 ``[N, H, W, C]`` or file paths) and their identity labels."""

    x: np.ndarray
    y: np.ndarray


@register_task("faces")
class FacesTask(Task):
    """Train the face encoder; evaluate verification and one-shot identification."""

    defaults = {
        "model": {"name": "face_encoder"},
        "data": {"test_fraction": 0.2},
        "faces": {
            "loss": "triplet_semi_hard",
            "margin": 0.2,
            "squared": True,  # triplet distances: squared (FaceNet) or plain Euclidean
            "p": 8,  # identities per batch
            "k": 4,  # images per identity
            "unseen_classes": [],  # identities (ids or names) held out of training for one-shot tests
            "unseen_fraction": 0.0,  # or this fraction of identities, drawn with the seed
            "max_pairs": 20000,  # validation/test pairs (balanced sample)
            "one_shot_draws": 5,
            "stages": [],  # freeze -> unfreeze schedule of a pretrained trunk, as transfer.stages (train: head|top_k|all)
        },
    }

    # -- data -----------------------------------------------------------------
    def build_inputs(self) -> Inputs:
        faces = self.recipe["faces"]
        if faces["loss"] not in LOSSES:
            raise UserError(f"faces.loss {faces['loss']!r} is unknown; choose one of {', '.join(LOSSES)}")
        try:
            self.splits, shape, names, info = self._load()
        except (KeyError, FileNotFoundError, ValueError) as err:
            raise UserError(f"data.dataset {self.recipe['data']['dataset']!r}: {clean_message(err)}") from None
        self.input_shape, self.class_names = shape, names
        train = self.splits["train"]
        p, k = faces["p"], faces["k"]
        try:
            ds = pk_batches(train.x, train.y, p, k, self.recipe["seed"], channels=shape[2], image_size=shape[:2])
        except ValueError as err:
            raise UserError(f"faces.p/faces.k: {err}") from None
        if self.recipe["data"]["augment"]:
            ds = self._augment(ds, p * k)
        val = self.splits["val"]
        val_ds = None
        if len(eligible_classes(val.y, k)) >= p:
            val_ds = pk_batches(val.x, val.y, p, k, self.recipe["seed"] + 1, shape[2], shape[:2]).take(max(1, len(val.y) // (p * k)))
        if faces["loss"] == "binary":
            ds, val_ds = _pairs(ds, p, k), _pairs(val_ds, p, k) if val_ds is not None else None
        info["sizes"] = {name: int(len(s.y)) for name, s in self.splits.items()}
        return Inputs(train=ds, val=val_ds, test=None, input_shape=shape, class_names=names, info=info)

    def _load(self):
        from pipelines import catalog, sources

        data, faces, seed = self.recipe["data"], self.recipe["faces"], self.recipe["seed"]
        spec = data["dataset"]
        if spec.startswith("folder:"):
            files = sources.image_folder(spec.split(":", 1)[1])
            x, y, names = np.array(files.paths), np.array(files.labels, np.int64), files.class_names
            test_x = test_y = None
            probe = tf.io.decode_image(tf.io.read_file(x[0]), channels=data["channels"] or 3, expand_animations=False)
            shape = (*(int(v) for v in (data["image_size"] or probe.shape[:2])), data["channels"] or 3)
            listing = "\n".join(f"{p}\t{lb}" for p, lb in zip(files.paths, files.labels, strict=True))
            info = {"fingerprint": hashlib.sha256(listing.encode()).hexdigest()[:16], "skipped": dict(files.skipped)}
        else:
            d = catalog.load_arrays(spec)
            x, y, names = d.x_train, d.y_train, list(d.class_names)
            test_x, test_y = d.x_test, d.y_test
            x, test_x = (_convert(a, data["channels"], data["image_size"]) for a in (x, test_x))
            shape, info = tuple(int(s) for s in x.shape[1:]), {"fingerprint": d.fingerprint()}
        unseen = _unseen_ids(faces["unseen_classes"], faces["unseen_fraction"], names, seed)
        rng = np.random.default_rng(seed)
        seen_idx = rng.permutation(np.flatnonzero(~np.isin(y, unseen)))
        n_val = int(round(len(seen_idx) * data["val_fraction"]))
        val_idx, train_idx = seen_idx[:n_val], seen_idx[n_val:]
        if data["train_limit"]:
            train_idx = train_idx[: data["train_limit"]]
            val_idx = val_idx[: max(1, int(round(data["train_limit"] * data["val_fraction"])))]
        if test_x is None:  # a folder: unseen identities' images, or a held-out part of the seen ones
            if len(unseen):
                test_idx = rng.permutation(np.flatnonzero(np.isin(y, unseen)))
            else:
                n_test = int(round(len(train_idx) * data["test_fraction"]))
                test_idx, train_idx = train_idx[:n_test], train_idx[n_test:]
            test_x, test_y = x[test_idx], y[test_idx]
        elif len(unseen):
            keep = np.isin(test_y, unseen)
            test_x, test_y = test_x[keep], test_y[keep]
        if data["test_limit"]:
            test_x, test_y = test_x[: data["test_limit"]], test_y[: data["test_limit"]]
        info["unseen_classes"] = [names[i] for i in unseen]
        splits = {"train": Split(x[train_idx], y[train_idx]), "val": Split(x[val_idx], y[val_idx]), "test": Split(test_x, test_y)}
        return splits, shape, names, info

    def _augment(self, ds: tf.data.Dataset, batch_size: int) -> tf.data.Dataset:
        from pipelines import augment

        try:
            augment.validate_policy(self.recipe["data"]["augment"])
        except ValueError as err:
            raise UserError(f"data.augment: {err}") from None
        unbatched = augment.augment_dataset(ds.unbatch(), self.recipe["data"]["augment"], self.recipe["seed"])
        return unbatched.batch(batch_size).prefetch(tf.data.AUTOTUNE)  # order kept: P x K groups stay intact

    # -- model and training ---------------------------------------------------
    def build_losses(self):
        faces = self.recipe["faces"]
        if faces["loss"] == "binary":
            return keras.losses.BinaryCrossentropy()
        return TripletLoss(LOSSES[faces["loss"]], margin=faces["margin"], seed=self.recipe["seed"], squared=faces["squared"])

    def steps_per_epoch(self) -> int:
        p, k = self.recipe["faces"]["p"], self.recipe["faces"]["k"]
        return self.recipe["train"]["steps_per_epoch"] or max(1, len(self.splits["train"].y) // (p * k))

    def compile(self, model: keras.Model, inputs: Inputs | None = None) -> None:
        if self.recipe["faces"]["stages"]:
            return  # compiled per stage in fit
        if self.recipe["faces"]["loss"] != "binary":  # the binary head is built and compiled in fit
            compile_model(model, optimizer=self.build_optimizer(self.steps_per_epoch()), loss=self.build_losses())

    def fit(self, model: keras.Model, inputs: Inputs, callbacks: list):
        if self.recipe["faces"]["stages"]:
            return self._fit_stages(model, inputs, callbacks)
        fitted = model
        if self.recipe["faces"]["loss"] == "binary":
            from models.siamese import siamese_binary

            fitted = self.siamese = siamese_binary(model)
            accuracy = keras.metrics.BinaryAccuracy(name="accuracy")
            compile_model(fitted, optimizer=self.build_optimizer(self.steps_per_epoch()), loss=self.build_losses(), metrics=[accuracy])
        return fitted.fit(
            inputs.train,
            validation_data=inputs.val,
            epochs=self.recipe["train"]["epochs"],
            steps_per_epoch=self.steps_per_epoch(),
            callbacks=callbacks,
            verbose=progress_verbosity(),
        )

    def _fit_stages(self, model: keras.Model, inputs: Inputs, callbacks: list):
        """Train ``faces.stages`` in turn: the projection alone, then the top k blocks of the trunk, then all."""
        from tasks.core.task import make_optimizer
        from tasks.problems.transfer import _stage_callbacks, parse_stages, set_trainable

        if self.recipe["faces"]["loss"] == "binary":
            raise UserError("faces.stages needs a triplet loss (faces.loss), not binary")
        try:
            trunk, head = model.get_layer("backbone"), model.get_layer("projection")
        except ValueError:
            raise UserError("faces.stages needs a pretrained trunk: set model.options.backbone (e.g. dlib_face_resnet)") from None
        from models.dlib_face_resnet import trunk_blocks

        blocks = trunk_blocks(trunk) if self.recipe["model"]["options"].get("backbone") == "dlib_face_resnet" else None
        if blocks is None:
            from models.backbones import backbone_blocks

            blocks = backbone_blocks(trunk, self.recipe["model"]["options"]["backbone"])
        stages = parse_stages(self.recipe["faces"]["stages"], self.recipe["train"])
        combined, epoch = keras.callbacks.History(), 0
        combined.history = {}
        for i, stage in enumerate(stages, start=1):
            where = f"faces.stages[{i}]"
            unfrozen = set_trainable(trunk, head, blocks, stage)
            print(f"stage {i}/{len(stages)}: train {stage['train']}{' ' + str(stage['k']) if stage['k'] else ''} "
                  f"({len(unfrozen)} trunk layers), {stage['epochs']} epoch(s), lr={stage['learning_rate']:g}", flush=True)
            compile_model(model, optimizer=make_optimizer(stage, self.steps_per_epoch(), where), loss=self.build_losses())
            history = model.fit(inputs.train, validation_data=inputs.val, initial_epoch=epoch, epochs=epoch + stage["epochs"],
                                steps_per_epoch=self.steps_per_epoch(), callbacks=_stage_callbacks(callbacks, i),
                                verbose=progress_verbosity())
            epoch += stage["epochs"]
            for key, values in history.history.items():
                combined.history.setdefault(key, []).extend(values)
        return combined

    # -- evaluation -----------------------------------------------------------
    def evaluate(self, model: keras.Model, inputs: Inputs) -> dict[str, float]:
        faces, seed = self.recipe["faces"], self.recipe["seed"]
        val, test = self.splits["val"], self.splits["test"]
        if len(np.unique(val.y)) < 2:
            raise UserError("the validation split needs two identities or more to choose a threshold; raise data.val_fraction")
        e_val = embed(model, val.x, self.input_shape)
        self.val_pairs = pair_distances(e_val, val.y, faces["max_pairs"], seed)
        self.verification = choose_threshold(*self.val_pairs)
        v = self.verification
        metrics = {"val_auc": v.auc, "val_eer": v.eer, "threshold": v.threshold}
        e_test = embed(model, test.x, self.input_shape)
        self.test_pairs = pair_distances(e_test, test.y, faces["max_pairs"], seed)
        d, same = self.test_pairs
        t = choose_threshold(d, same)
        accept = d <= v.threshold
        metrics.update(
            test_auc=t.auc,
            test_eer=t.eer,
            test_accuracy=float(0.5 * (accept[same].mean() + (~accept[~same]).mean())),
            test_one_shot_accuracy=one_shot_accuracy(e_test, test.y, faces["one_shot_draws"], seed),
        )
        if getattr(self, "siamese", None) is not None:
            from sklearn.metrics import roc_auc_score

            w, b = self.siamese.get_layer("same_identity").get_weights()
            i, j = pair_indices(test.y, faces["max_pairs"], seed)  # the same pairs as test_auc
            score = np.abs(e_test[i] - e_test[j]) @ w[:, 0] + b[0]  # the head's logit
            metrics["test_head_auc"] = float(roc_auc_score(test.y[i] == test.y[j], score))
        return metrics

    def log_figures(self, model, inputs, history, out_dir: Path) -> list[Path]:
        from tasks.figures import plots

        out = []
        if history:
            out.append(plots.save(plots.training_curves(history), out_dir / "training_curves.png"))
        if getattr(self, "verification", None) is not None:
            fig = roc_figure({"validation (seen identities)": self.val_pairs, "test (unseen identities)": self.test_pairs}, self.verification)
            out.append(plots.save(fig, out_dir / "roc.png"))
        return out

    def export(self, model, inputs, root, name) -> Path:
        h, w, c = self.input_shape
        meta = self.verification.to_json(
            embedding_dim=int(model.output_shape[-1]), input_shape=[h, w, c], loss=self.recipe["faces"]["loss"], distance="squared_l2",
            alignment="dlib_chip_150" if self.recipe["model"]["options"].get("backbone") == "dlib_face_resnet" else "arcface_112",
        )

        def serve(images):
            return {"embedding": tf.cast(model(images, training=False), tf.float32)}

        assets = {VERIFICATION_FILE: meta, RECIPE_ASSET: yaml.safe_dump(self.recipe, sort_keys=False)}
        return export_image_model(serve, model, root, name, (h, w), c, assets, decode=decode_image)


# -- helpers -------------------------------------------------------------------
def _convert(x: np.ndarray, channels: int | None, image_size) -> np.ndarray:
    if channels == 3 and x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    elif channels == 1 and x.shape[-1] == 3:
        x = np.round(x @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)[..., None]
    if image_size and tuple(image_size) != x.shape[1:3]:
        x = tf.cast(tf.clip_by_value(tf.round(tf.image.resize(x, image_size, antialias=True)), 0, 255), tf.uint8).numpy()
    return x


def _unseen_ids(listed: list, fraction: float, names: list[str], seed: int) -> np.ndarray:
    ids = []
    for item in listed:
        if isinstance(item, int) and 0 <= item < len(names):
            ids.append(item)
        elif item in names:
            ids.append(names.index(item))
        else:
            raise ValueError(f"faces.unseen_classes names {item!r}, which is not an identity of this dataset")
    if fraction:
        order = np.random.default_rng(seed).permutation(len(names))
        ids.extend(order[: int(round(len(names) * fraction))].tolist())
    ids = np.unique(np.array(ids, np.int64))
    if len(ids) and len(ids) >= len(names) - 1:
        raise ValueError("faces.unseen_classes leaves fewer than 2 identities to train on")
    return ids


def _pairs(ds: tf.data.Dataset, p: int, k: int) -> tf.data.Dataset:
    """P x K batches -> ({"image_a", "image_b"}, same) with one positive and one negative partner per image."""
    i = np.arange(p * k)
    group, slot = i // k, i % k
    positive = group * k + (slot + 1) % k
    negative = ((group + 1) % p) * k + slot
    partner = tf.constant(np.concatenate([positive, negative]))
    same = tf.constant(np.r_[np.ones(p * k), np.zeros(p * k)].astype(np.float32)[:, None])

    def to_pairs(x, y):
        return {"image_a": tf.concat([x, x], 0), "image_b": tf.gather(x, partner)}, same

    return ds.map(to_pairs, num_parallel_calls=tf.data.AUTOTUNE)


def embed(model: keras.Model, x: np.ndarray, input_shape, batch_size: int = 256) -> np.ndarray:
    """Embeddings ``[N, D]`` of images held in memory or named by file paths."""
    from pipelines.decode import decode_image

    h, w, c = input_shape
    ds = tf.data.Dataset.from_tensor_slices(x)
    if np.asarray(x).dtype.kind in "USO":
        ds = ds.map(lambda f: decode_image(tf.io.read_file(f), c, (h, w)), num_parallel_calls=tf.data.AUTOTUNE)
    return np.asarray(model.predict(ds.batch(batch_size), verbose=0), np.float32)


def one_shot_accuracy(embeddings: np.ndarray, labels: np.ndarray, draws: int = 5, seed: int = 0) -> float:
    """Enrol one random image per identity, identify every other image by nearest encoding; mean accuracy over draws."""
    rng = np.random.default_rng(seed)
    ids = np.unique(labels)
    scores = []
    for _ in range(draws):
        enrolled = np.array([rng.choice(np.flatnonzero(labels == c)) for c in ids])
        queries = np.setdiff1d(np.arange(len(labels)), enrolled)
        if not len(queries):
            return float("nan")
        rows, _ = best_inner_product(embeddings[enrolled], embeddings[queries])
        scores.append(np.mean(ids[rows] == labels[queries]))
    return float(np.mean(scores))


def roc_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], verification: Verification):
    """ROC curves (true-accept vs false-accept rate) of (distances, same) pairs, the chosen threshold marked."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4.4))
    for label, (d, same) in curves.items():
        fpr, tpr, _ = roc(d, same)
        from sklearn.metrics import auc

        ax.plot(fpr, tpr, label=f"{label}: AUC {auc(fpr, tpr):.3f}")
        accept = d <= verification.threshold
        ax.scatter([accept[~same].mean()], [accept[same].mean()], s=30, zorder=3)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set_xlabel("false-accept rate (different identities)")
    ax.set_ylabel("true-accept rate (same identity)")
    ax.set_title(f"verification ROC; threshold d <= {verification.threshold:.3f} (EER {verification.eer:.3f})")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    return fig

