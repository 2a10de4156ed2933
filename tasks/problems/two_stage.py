"""Two-stage detection (Fast R-CNN, Faster R-CNN) on labelled scenes: the YOLO task's data, mAP and figures.

``task: two_stage_detection`` with ``model.name: fast_rcnn`` (selective-search
proposals, ``models.fast_rcnn``) or ``faster_rcnn`` (a region proposal
network, ``models.faster_rcnn``). Data, fresh scenes, augmentation, mAP
(VOC mAP@0.5, COCO mAP@[.5:.95] down to ``eval_score_threshold``) and the
detection figure are the YOLO task's (``tasks.problems.detection``). The trainer fits
the *training graph* (``models.two_stage_training``: in-graph targets, one
loss per stage, logged as ``rpn_loss`` and ``head_loss`` for Faster R-CNN;
Fast R-CNN has one stage, its ``loss`` is the head's) and evaluates, logs and
exports the inference model.

Recipe section ``detection``: the serving thresholds (``score_threshold`` 0.6,
``iou_threshold`` 0.5, per class), ``max_detections``, ``max_proposals``
(selective-search proposals kept per image, Fast R-CNN), ``rois_per_image``
and ``fg_fraction`` (the head's sampled RoIs), ``rpn_batch`` and
``train_proposals`` (Faster R-CNN's sampled anchors and training proposals),
``box_weight`` (smooth L1 weight), ``max_boxes`` (ground truths per image).

Export: Faster R-CNN takes only the image (uint8 or encoded bytes); Fast
R-CNN also takes its proposals (``serving.proposal_export``; ``convforge
detect`` computes them). Outputs ``detection_boxes``, ``detection_scores``,
``detection_classes``, ``num_detections``; decoding + NMS inside the graph.
"""

from __future__ import annotations

import hashlib
import json

import keras
import numpy as np
import tensorflow as tf
import yaml

from models.fast_rcnn import detect_regions
from models.nms import class_nms
from models.region_proposals import selective_search
from models.two_stage_training import OutputLoss, stage_names, two_stage_training_model
from pipelines.decode import decode_image
from pipelines.scene_data import scene_element_dataset, scenes_fingerprint
from pipelines.scenes import Scenes
from serving.export import CLASS_NAMES_FILE, export_image_model
from serving.proposal_export import PROPOSALS_FILE, export_proposal_model
from tasks.core.errors import UserError
from tasks.core.task import RECIPE_ASSET, Inputs, compile_model, register_task
from tasks.problems.detection import (
    POSTPROCESS_DEFAULTS,
    SCENE_TASK_DEFAULTS,
    DetectionTask,
    evaluate_detections,
    load_scene_splits,
)

TWO_STAGE_MODELS = ("fast_rcnn", "faster_rcnn")


def padded_proposals(image: np.ndarray, max_proposals: int) -> np.ndarray:
    """Selective-search proposals of one image, at most ``max_proposals`` (a fixed random subset when there
    are more), zero rows after them: float32 ``[max_proposals, 4]``."""
    boxes = selective_search(np.asarray(image))
    if len(boxes) > max_proposals:
        boxes = boxes[np.sort(np.random.default_rng(0).permutation(len(boxes))[:max_proposals])]
    out = np.zeros((max_proposals, 4), np.float32)
    out[: len(boxes)] = boxes
    return out


def predict_regions(model: keras.Model, images: np.ndarray, num_classes: int, score_threshold=0.6,
                    iou_threshold=0.5, max_detections=100, proposals: np.ndarray | None = None,
                    batch_size: int = 32) -> tuple[list[tuple], list[int]]:
    """Run a two-stage inference model + ``detect_regions`` (decoding + per-class NMS).

    ``proposals [N, P, 4]`` for Fast R-CNN; Faster R-CNN makes its own. Returns
    per image ``(boxes [D, 4], scores [D], classes [D])`` and the number of RoIs the head saw.
    """
    def run(x, rois=None):
        if rois is None:
            logits, deltas, rois, num = model(x, training=False)
        else:
            logits, deltas = model([x, rois], training=False)
            num = tf.reduce_sum(tf.cast((rois[..., 2] - rois[..., 0]) > 0, tf.int32), -1)
        out = detect_regions(logits, deltas, rois, num_classes, score_threshold, iou_threshold, max_detections)
        return out, num

    fn = tf.function(run, reduce_retracing=True)
    dets, counts = [], []
    for i in range(0, len(images), batch_size):
        args = [tf.constant(images[i : i + batch_size])]
        if proposals is not None:
            args.append(tf.constant(proposals[i : i + batch_size]))
        out, num = fn(*args)
        d = {k: v.numpy() for k, v in out.items()}
        counts += num.numpy().tolist()
        for j, n in enumerate(d["num_detections"]):
            dets.append((d["detection_boxes"][j, :n], d["detection_scores"][j, :n],
                         d["detection_classes"][j, :n].astype(int)))
    return dets, counts


@register_task("two_stage_detection")
class TwoStageDetectionTask(DetectionTask):
    """Fast R-CNN (``model.name: fast_rcnn``) or Faster R-CNN (``faster_rcnn``) on generated scenes."""

    defaults = dict(SCENE_TASK_DEFAULTS, model={"name": "faster_rcnn"},
                    detection=dict(POSTPROCESS_DEFAULTS, max_proposals=300, max_boxes=16, rois_per_image=32,
                                   fg_fraction=0.25, rpn_batch=64, train_proposals=64, box_weight=1.0))

    @property
    def needs_proposals(self) -> bool:
        return self.recipe["model"]["name"] == "fast_rcnn"

    def build_inputs(self) -> Inputs:
        data = self.recipe["data"]
        if self.recipe["model"]["name"] not in TWO_STAGE_MODELS:
            raise UserError(f"model.name {self.recipe['model']['name']!r}: task two_stage_detection trains "
                            f"{' or '.join(TWO_STAGE_MODELS)}; use task detection for yolo")
        image_size = [int(s) for s in data["image_size"] or [128, 128]]
        self.train_scenes, val, self.test_scenes = load_scene_splits(
            data["dataset"], image_size, self.recipe["scenes"], self.recipe["seed"], data["val_fraction"],
            data["test_fraction"])
        self.num_classes = len(self.train_scenes.class_names)
        bs = self.recipe["train"]["batch_size"]
        return Inputs(
            train=self._examples(self._augmented(self._train_elements())).batch(bs).prefetch(tf.data.AUTOTUNE),
            val=self._examples(self._elements(val)).batch(bs) if len(val) else None,
            test=None,
            input_shape=(image_size[0], image_size[1], 3),
            class_names=self.train_scenes.class_names,
            info={"fingerprint": scenes_fingerprint(self.train_scenes, val, self.test_scenes),
                  "sizes": {"train": len(self.train_scenes), "val": len(val), "test": len(self.test_scenes)}},
        )

    # -- data: images, padded ground truth (+ proposals) -> the training graph's inputs ----------------------
    @staticmethod
    def _elements(scenes: Scenes) -> tf.data.Dataset:
        return scene_element_dataset(lambda: [scenes], scenes.images.shape[1:3])

    def _examples(self, ds: tf.data.Dataset) -> tf.data.Dataset:
        det = self.recipe["detection"]
        m, p = int(det["max_boxes"]), int(det["max_proposals"])
        stages = ("rpn", "head") if self.recipe["model"]["name"] == "faster_rcnn" else ("head",)
        with_proposals = self.needs_proposals
        cache: dict[bytes, np.ndarray] = {}  # fixed scenes come back every epoch: search each once

        def search(image):
            if self._fresh():  # an endless stream never repeats a scene
                return padded_proposals(image, p)
            key = hashlib.blake2b(image.tobytes(), digest_size=16).digest()
            if key not in cache:
                cache[key] = padded_proposals(image, p)
            return cache[key]

        @tf.autograph.experimental.do_not_convert
        def example(e):
            n = tf.minimum(tf.shape(e["boxes"])[0], m)
            boxes = tf.pad(e["boxes"][:n], [[0, m - n], [0, 0]])
            classes = tf.pad(tf.cast(e["box_labels"][:n], tf.int32), [[0, m - n]], constant_values=-1)
            x = {"image": e["image"], "gt_boxes": tf.ensure_shape(boxes, [m, 4]),
                 "gt_classes": tf.ensure_shape(classes, [m])}
            if with_proposals:
                rois = tf.numpy_function(search, [e["image"]], tf.float32)
                x["proposals"] = tf.ensure_shape(rois, [p, 4])
            return x, {s: tf.zeros([]) for s in stages}

        return ds.map(example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    # -- model ----------------------------------------------------------------------------------------------
    def model_options(self, inputs: Inputs) -> dict:
        return dict(self.config.model.options)  # no YOLO anchors: proposals come from the RPN or selective search

    def finish_model(self, model: keras.Model, inputs: Inputs) -> keras.Model:
        """The inference model, wrapped in the training model that adds each stage's loss."""
        self.inference = model
        det = self.recipe["detection"]
        return two_stage_training_model(self.inference, self.num_classes, det["max_boxes"], det["rois_per_image"],
                                        det["fg_fraction"], det["rpn_batch"], det["train_proposals"],
                                        det["box_weight"], seed=self.recipe["seed"])

    def inference_model(self, model: keras.Model) -> keras.Model:
        return self.inference

    def compile(self, model: keras.Model, inputs: Inputs | None = None) -> None:
        compile_model(model, optimizer=self.build_optimizer(self.batches_per_epoch(inputs)),
                      loss={s: OutputLoss() for s in stage_names(model)}, jit_compile=False)

    # -- evaluation, figures, export ----------------------------------------------------------------------
    def proposals_for(self, images: np.ndarray) -> np.ndarray | None:
        """Fast R-CNN's padded selective-search proposals ``[N, P, 4]`` (None for Faster R-CNN)."""
        if not self.needs_proposals:
            return None
        return np.stack([padded_proposals(im, int(self.recipe["detection"]["max_proposals"])) for im in images])

    def _detections(self, model, images, score_threshold: float) -> list[tuple]:
        return self._predict(images, score_threshold)[0]

    def _predict(self, images, score_threshold: float):
        det = self.recipe["detection"]
        return predict_regions(self.inference, images, self.num_classes, score_threshold, det["iou_threshold"],
                               det["max_detections"], self.proposals_for(images))

    def evaluate(self, model: keras.Model, inputs: Inputs) -> dict[str, float]:
        det = self.recipe["detection"]
        ranked, counts = self._predict(self.test_scenes.images, det["eval_score_threshold"])
        metrics = {f"test_{k}": v for k, v in evaluate_detections(self.test_scenes, ranked).items()}
        metrics["test_proposals_per_image"] = float(np.mean(counts))
        self._test_detections = [tuple(part[d[1] > det["score_threshold"]] for part in d) for d in ranked]
        return metrics

    def export(self, model, inputs, root, name):
        det, k, net = self.recipe["detection"], self.num_classes, self.inference
        assets = {CLASS_NAMES_FILE: "\n".join(inputs.class_names) + "\n",
                  RECIPE_ASSET: yaml.safe_dump(self.recipe, sort_keys=False)}
        thresholds = (det["score_threshold"], det["iou_threshold"], det["max_detections"])
        if not self.needs_proposals:
            def serve(images):
                logits, deltas, rois, _ = net(images, training=False)
                return detect_regions(logits, deltas, rois, k, *thresholds)

            return export_image_model(serve, net, root, name, inputs.input_shape[:2], 3, assets, decode=decode_image)

        def serve_with(images, proposals):
            logits, deltas = net([images, proposals], training=False)
            return detect_regions(logits, deltas, proposals, k, *thresholds)

        assets[PROPOSALS_FILE] = json.dumps({"method": "selective_search", "image_size": list(inputs.input_shape[:2]),
                                             "max_proposals": int(det["max_proposals"])})
        return export_proposal_model(serve_with, net, root, name, inputs.input_shape[:2], 3, assets,
                                     decode=decode_image)


def export_rcnn(classifier: keras.Model, root, name: str, class_names: list[str], image_size=(128, 128),
                max_proposals: int = 300, score_threshold: float = 0.6, iou_threshold: float = 0.5,
                max_detections: int = 50):
    """Export an R-CNN (a warped-region classifier whose last class is background) like Fast R-CNN's:
    images + selective-search proposals in; every proposal warped (``crop_and_resize``, as
    ``models.region_proposals.warp_regions``), classified, then per-class NMS, inside the graph.

    Example:
        >>> export_rcnn(clf, "exports", "scenes_rcnn", class_names)   # convforge detect exports/scenes_rcnn x.png
    """
    size, k = int(classifier.input_shape[1]), len(class_names)

    def serve(images, proposals):
        n, p = tf.shape(proposals)[0], tf.shape(proposals)[1]
        crops = tf.image.crop_and_resize(tf.cast(images, tf.float32), tf.reshape(proposals, [-1, 4]),
                                         tf.repeat(tf.range(n), p), [size, size])
        crops = tf.cast(tf.clip_by_value(tf.round(crops), 0, 255), tf.uint8)
        probs = tf.reshape(tf.cast(classifier(crops, training=False), tf.float32), [n, p, k + 1])[..., :k]
        area = (proposals[..., 2] - proposals[..., 0]) * (proposals[..., 3] - proposals[..., 1])
        return class_nms(proposals, probs * tf.cast(area > 0, tf.float32)[..., None], score_threshold,
                         iou_threshold, max_detections)

    assets = {CLASS_NAMES_FILE: "\n".join(class_names) + "\n",
              PROPOSALS_FILE: json.dumps({"method": "selective_search", "image_size": list(image_size),
                                          "max_proposals": int(max_proposals)})}
    return export_proposal_model(serve, classifier, root, name, image_size, 3, assets, decode=decode_image)
