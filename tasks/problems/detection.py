"""Object detection with YOLO on labelled scenes: anchors by k-means, grid targets, mAP, NMS in the export.

Data: ``data.dataset: scenes:fashion_mnist`` (or ``scenes:digits``) makes
scenes with ``pipelines.scenes`` — real objects on real photos, exact boxes;
training scenes use the catalog's *training* objects, test scenes its *test*
objects and other seeds, so the test scenes are held out. ``voc:DIR``,
``coco:FILE.json`` and ``yolo:DIR`` read a labelled dataset through
``pipelines.annotations`` (split by ``data.val_fraction``/``test_fraction``). ``data.augment``
applies the box-aware augmentation policy (boxes move with the pixels) before
the targets are encoded.

``scenes.fresh`` (default true, generated scenes only): every epoch trains on
``scenes.train`` *new* scenes from an endless seeded stream, so the detector
never sees a scene twice and cannot memorise backgrounds.

Recipe section ``detection``: ``anchors`` (k of the k-means), thresholds of
the post-processing (``score_threshold`` 0.6: discard ``pc <= 0.6``;
``iou_threshold`` 0.5: suppress IoU >= 0.5, per class), ``max_detections``,
and the loss weights. Section ``scenes``: how many scenes and what they hold.

Evaluation: VOC mAP@0.5 and COCO mAP@[.5:.95] on the held-out scenes (logged
as ``test_map50_voc``, ``test_map_coco`` ...). mAP integrates precision over
all recall levels, so it ranks detections down to ``eval_score_threshold``
(0.05, the usual practice) rather than stopping at the serving threshold;
figures: training curves and
predicted vs true boxes. Export: uint8 images or encoded bytes in,
``detection_boxes``, ``detection_scores``, ``detection_classes``,
``num_detections`` out (decoding + NMS inside the graph).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
import yaml

from models.yolo import YoloLoss, detect, encode_targets, kmeans_anchors, mean_best_iou
from pipelines.decode import decode_image
from pipelines.scenes import Scenes, background_photos, make_scenes, scene_stream
from serving.export import CLASS_NAMES_FILE, export_image_model
from tasks.core.errors import UserError
from tasks.core.task import RECIPE_ASSET, Inputs, Task, progress_verbosity, register_task
from tasks.evaluation.mean_average_precision import detection_metrics
from tasks.figures import plots
from tasks.figures.detection_drawing import draw_detections, tile, write_png

ANCHORS_ASSET = "anchors.json"
SCENE_DEFAULTS = {
    "train": 3000, "val": 300, "test": 500, "fresh": True,
    "objects_per_scene": [1, 4], "object_size": [24, 48], "max_overlap": 0.1,
}
MAX_BOXES = 32


ANNOTATION_KINDS = ("voc", "coco", "yolo")


def load_scene_splits(dataset: str, image_size, cfg: dict, seed: int, val_fraction: float = 0.1,
                      test_fraction: float = 0.1) -> tuple[Scenes, Scenes, Scenes]:
    """Train/val/test ``Scenes`` for ``data.dataset``.

    ``scenes:<catalog name>``: generated; train/val from the catalog's training
    objects, test from its test objects (held out). ``voc:DIR``, ``coco:FILE.json``
    or ``yolo:DIR``: a labelled dataset read by ``pipelines.annotations``, resized
    to ``image_size`` in memory and split by ``seed``.
    """
    kind, _, where = dataset.partition(":")
    if kind in ANNOTATION_KINDS and where:
        return load_annotated_splits(kind, where, image_size, seed, val_fraction, test_fraction)
    if kind != "scenes" or not where:
        raise UserError(f"data.dataset {dataset!r}: detection reads scenes:<catalog name> (e.g. scenes:fashion_mnist), "
                        "voc:DIR, coco:FILE.json or yolo:DIR")
    data, photos, common = scene_source(where, image_size, cfg)
    train = make_scenes(data.x_train, data.y_train, photos, cfg["train"], seed=seed, **common)
    val = make_scenes(data.x_train, data.y_train, photos, cfg["val"], seed=seed + 1, **common)
    test = make_scenes(data.x_test, data.y_test, photos, cfg["test"], seed=seed + 2, **common)
    return train, val, test


def scene_source(objects: str, image_size, cfg: dict):
    """The catalog dataset of objects, the background photos and the ``make_scenes`` options."""
    from pipelines.catalog import load_arrays

    try:
        data = load_arrays(objects)
    except (KeyError, FileNotFoundError, ValueError) as err:
        raise UserError(f"data.dataset 'scenes:{objects}': {str(err).strip(chr(34) + chr(39))}") from None
    common = dict(image_size=tuple(int(s) for s in image_size), objects_per_scene=tuple(cfg["objects_per_scene"]),
                  object_size=tuple(cfg["object_size"]), max_overlap=cfg["max_overlap"], class_names=data.class_names)
    return data, background_photos(), common


def load_annotated_splits(kind: str, where: str, image_size, seed: int, val_fraction: float,
                          test_fraction: float) -> tuple[Scenes, Scenes, Scenes]:
    """A VOC/COCO/YOLO dataset as in-memory ``Scenes`` (images resized; boxes are normalised, so unchanged)."""
    import cv2

    from pipelines import annotations

    reader = {"voc": annotations.read_voc, "coco": annotations.read_coco, "yolo": annotations.read_yolo}[kind]
    try:
        ann = reader(where)
    except (OSError, ValueError) as err:
        raise UserError(f"data.dataset {kind}:{where}: {err}") from None
    if not ann.paths:
        raise UserError(f"data.dataset {kind}:{where}: no usable images (skipped: {dict(ann.skipped)})")
    h, w = (int(s) for s in image_size)
    images = np.stack([cv2.resize(cv2.cvtColor(cv2.imread(p, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB), (w, h),
                                  interpolation=cv2.INTER_AREA) for p in ann.paths])
    marks = ann.keypoints or [np.zeros((len(b), 0, 2), np.float32) for b in ann.boxes]
    scenes = Scenes(images, ann.boxes, ann.labels, marks, list(ann.class_names))
    order = np.random.default_rng(seed).permutation(len(scenes))
    n_test, n_val = int(round(len(order) * test_fraction)), int(round(len(order) * val_fraction))
    test, val, train = np.split(order, [n_test, n_test + n_val])
    if len(train) == 0:
        raise UserError(f"data.dataset {kind}:{where}: {len(order)} images leave none for training; "
                        "lower data.val_fraction / data.test_fraction")
    return scenes.subset(np.sort(train)), scenes.subset(np.sort(val)), scenes.subset(np.sort(test))


def fit_scenes(model: keras.Model, inputs: Inputs, callbacks: list, recipe: dict, fresh: bool):
    """``model.fit``; with a fresh (endless) scene stream an epoch is ``scenes.train`` scenes."""
    train = recipe["train"]
    steps = train["steps_per_epoch"]
    if steps is None and fresh:
        steps = -(-recipe["scenes"]["train"] // train["batch_size"])
    return model.fit(inputs.train, validation_data=inputs.val, epochs=train["epochs"], steps_per_epoch=steps,
                     callbacks=callbacks, verbose=progress_verbosity())


def scenes_fingerprint(*parts: Scenes) -> str:
    h = hashlib.sha256()
    for s in parts:
        h.update(np.ascontiguousarray(s.images[:: max(1, len(s) // 64)]).tobytes())
        h.update(np.concatenate([b.reshape(-1) for b in s.boxes] or [np.zeros(0)]).tobytes())
    return h.hexdigest()[:16]


def predict_detections(model, images: np.ndarray, anchors, num_classes: int, score_threshold=0.6,
                       iou_threshold=0.5, max_detections=100, batch_size: int = 64,
                       one_class_per_box: bool = False) -> list[tuple]:
    """Run the YOLO model + decoding + NMS; per image ``(boxes [D, 4], scores [D], classes [D])``."""
    fn = tf.function(lambda x: detect(model(x, training=False), anchors, num_classes, score_threshold,
                                      iou_threshold, max_detections, one_class_per_box), reduce_retracing=True)
    out = []
    for i in range(0, len(images), batch_size):
        d = {k: v.numpy() for k, v in fn(tf.constant(images[i : i + batch_size])).items()}
        for j, n in enumerate(d["num_detections"]):
            out.append((d["detection_boxes"][j, :n], d["detection_scores"][j, :n], d["detection_classes"][j, :n].astype(int)))
    return out


def evaluate_detections(scenes: Scenes, detections: list[tuple]) -> dict[str, float]:
    """mAP numbers of per-image detections against the scenes' ground truth."""
    return detection_metrics(scenes.boxes, scenes.classes, [d[0] for d in detections],
                             [d[1] for d in detections], [d[2] for d in detections])


def detections_figure(scenes: Scenes, detections: list[tuple], class_names, count: int = 8) -> np.ndarray:
    """Held-out scenes: true boxes thin white, predictions coloured with class and score."""
    tiles = []
    for i in range(min(count, len(scenes))):
        im = draw_detections(scenes.images[i], scenes.boxes[i], scenes.classes[i], colour=(255, 255, 255),
                             thickness=1, labels=False)
        boxes, scores, classes = detections[i]
        tiles.append(draw_detections(im, boxes, classes, scores, class_names))
    return tile(tiles, columns=4)


@register_task("detection")
class DetectionTask(Task):
    """YOLO detection (``model.name: yolo``) on generated scenes."""

    defaults = {
        "data": {"dataset": "scenes:fashion_mnist", "image_size": [128, 128], "test_fraction": 0.1},
        "model": {"name": "yolo"},
        "scenes": dict(SCENE_DEFAULTS),
        "detection": {"anchors": 3, "score_threshold": 0.6, "iou_threshold": 0.5, "max_detections": 50,
                      "eval_score_threshold": 0.05, "coord_weight": 5.0, "noobj_weight": 0.5},
    }

    def build_inputs(self) -> Inputs:
        data, det = self.recipe["data"], self.recipe["detection"]
        image_size = data["image_size"] or [128, 128]
        self.train_scenes, val, self.test_scenes = load_scene_splits(
            data["dataset"], image_size, self.recipe["scenes"], self.recipe["seed"], data["val_fraction"],
            data["test_fraction"])
        boxes = np.concatenate(self.train_scenes.boxes)
        wh = np.stack([boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]], 1)
        self.anchors = kmeans_anchors(wh, det["anchors"], seed=self.recipe["seed"])
        stride = int(self.recipe["model"]["options"].get("stride", 16))
        self.grid = int(image_size[0]) // stride
        self.num_classes = len(self.train_scenes.class_names)
        bs = self.recipe["train"]["batch_size"]
        return Inputs(
            train=self._train_dataset(bs),
            val=self._dataset(val).batch(bs),
            test=self._dataset(self.test_scenes).batch(bs),
            input_shape=(int(image_size[0]), int(image_size[1]), 3),
            class_names=self.train_scenes.class_names,
            info={"fingerprint": scenes_fingerprint(self.train_scenes, val, self.test_scenes),
                  "sizes": {"train": len(self.train_scenes), "val": len(val), "test": len(self.test_scenes)},
                  "anchors": self.anchors.tolist(), "anchor_mean_iou": mean_best_iou(wh, self.anchors)},
        )

    def _encode(self, boxes, classes) -> np.ndarray:
        return encode_targets(boxes, classes, self.anchors, self.grid, self.num_classes)

    def _dataset(self, scenes: Scenes) -> tf.data.Dataset:
        targets = np.stack([self._encode(b, c) for b, c in zip(scenes.boxes, scenes.classes, strict=False)])
        return tf.data.Dataset.from_tensor_slices((scenes.images, targets))

    def _fresh(self) -> bool:
        return bool(self.recipe["scenes"]["fresh"]) and self.recipe["data"]["dataset"].startswith("scenes:")

    def _train_elements(self) -> tf.data.Dataset:
        """Unbatched ``{image, boxes, box_labels}``: fresh scenes without end, or the fixed training scenes."""
        if self._fresh():
            cfg, seed = self.recipe["scenes"], self.recipe["seed"]
            data, photos, common = scene_source(self.recipe["data"]["dataset"].partition(":")[2],
                                                self.train_scenes.images.shape[1:3], cfg)
            stream = scene_stream(data.x_train, data.y_train, photos, seed=seed, **common)  # persists across epochs

            def scenes():
                for chunk in stream:
                    for image, boxes, labels in zip(chunk.images, chunk.boxes, chunk.classes, strict=True):
                        yield {"image": image, "boxes": boxes, "box_labels": labels}

            h, w = self.train_scenes.images.shape[1:3]
            return tf.data.Dataset.from_generator(scenes, output_signature={
                "image": tf.TensorSpec([h, w, 3], tf.uint8), "boxes": tf.TensorSpec([None, 4], tf.float32),
                "box_labels": tf.TensorSpec([None], tf.int64)})
        scenes = self.train_scenes
        counts = np.array([min(len(b), MAX_BOXES) for b in scenes.boxes], np.int32)
        boxes = np.zeros((len(scenes), MAX_BOXES, 4), np.float32)
        labels = np.zeros((len(scenes), MAX_BOXES), np.int64)
        for i, (b, c) in enumerate(zip(scenes.boxes, scenes.classes, strict=True)):
            boxes[i, : counts[i]], labels[i, : counts[i]] = b[:MAX_BOXES], c[:MAX_BOXES]
        ds = tf.data.Dataset.from_tensor_slices({"image": scenes.images, "boxes": boxes, "box_labels": labels,
                                                 "count": counts})
        ds = ds.shuffle(min(len(scenes), self.recipe["data"]["shuffle_buffer"]), seed=self.recipe["seed"])
        return ds.map(lambda e: {"image": e["image"], "boxes": e["boxes"][: e["count"]],
                                 "box_labels": e["box_labels"][: e["count"]]})

    def _train_dataset(self, batch_size: int) -> tf.data.Dataset:
        policy = self.recipe["data"]["augment"]
        if not policy and not self._fresh():
            ds = self._dataset(self.train_scenes)
            ds = ds.shuffle(min(len(self.train_scenes), self.recipe["data"]["shuffle_buffer"]), seed=self.recipe["seed"])
            return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
        ds = self._train_elements()
        if policy:
            from pipelines.augment import augment_dataset, validate_policy

            try:
                validate_policy(policy)
            except ValueError as err:
                raise UserError(f"data.augment: {err}") from None
            ds = augment_dataset(ds, policy, self.recipe["seed"])
        anchors, grid, k = self.anchors, self.grid, self.num_classes
        shape = (grid, grid, len(anchors), 5 + k)

        def targets(boxes, labels):
            return encode_targets(boxes, labels, anchors, grid, k)

        def encode(e):
            y = tf.numpy_function(targets, [e["boxes"], e["box_labels"]], tf.float32)
            return e["image"], tf.ensure_shape(y, shape)

        ds = ds.map(encode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    def fit(self, model: keras.Model, inputs: Inputs, callbacks: list) -> keras.callbacks.History:
        return fit_scenes(model, inputs, callbacks, self.recipe, self._fresh())

    def model_options(self, inputs: Inputs) -> dict:
        options = {"anchors": self.anchors.tolist(), **super().model_options(inputs)}
        self.anchors = np.asarray(options["anchors"], np.float32)
        return options

    def build_losses(self):
        det = self.recipe["detection"]
        return YoloLoss(coord=det["coord_weight"], noobj=det["noobj_weight"])

    def _detections(self, model, images, score_threshold: float) -> list[tuple]:
        det = self.recipe["detection"]
        return predict_detections(model, images, self.anchors, self.num_classes, score_threshold,
                                  det["iou_threshold"], det["max_detections"])

    def evaluate(self, model: keras.Model, inputs: Inputs) -> dict[str, float]:
        det = self.recipe["detection"]
        ranked = self._detections(model, self.test_scenes.images, det["eval_score_threshold"])
        metrics = {f"test_{k}": v for k, v in evaluate_detections(self.test_scenes, ranked).items()}
        self._test_detections = [tuple(part[d[1] > det["score_threshold"]] for part in d) for d in ranked]
        metrics["anchor_mean_iou"] = float(inputs.info["anchor_mean_iou"])
        return metrics

    def log_figures(self, model, inputs, history, out_dir: Path) -> list[Path]:
        out = []
        if history:
            out.append(plots.save(plots.training_curves(history), out_dir / "training_curves.png"))
        dets = getattr(self, "_test_detections", None) or self._detections(
            model, self.test_scenes.images[:8], self.recipe["detection"]["score_threshold"])
        out.append(write_png(out_dir / "detections.png", detections_figure(self.test_scenes, dets, inputs.class_names)))
        return out

    def export(self, model, inputs, root, name) -> Path:
        det, anchors, k = self.recipe["detection"], self.anchors, self.num_classes

        def serve(images):
            return detect(model(images, training=False), anchors, k, det["score_threshold"], det["iou_threshold"],
                          det["max_detections"])

        assets = {CLASS_NAMES_FILE: "\n".join(inputs.class_names) + "\n",
                  RECIPE_ASSET: yaml.safe_dump(self.recipe, sort_keys=False),
                  ANCHORS_ASSET: json.dumps(anchors.tolist())}
        return export_image_model(serve, model, root, name, inputs.input_shape[:2], 3, assets, decode=decode_image)
