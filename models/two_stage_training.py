"""Training graphs of Fast and Faster R-CNN: the inference model's parts plus targets and losses.

The graph takes the image, padded ground truth (``gt_boxes [N, M, 4]``,
``gt_classes [N, M]`` with -1 padding) and, for Fast R-CNN, the
selective-search ``proposals [N, P, 4]``; it shares the inference model's
``trunk``, ``rpn``, ``roi_pool`` and ``head``, samples targets inside the graph
and outputs one loss per image for each stage: ``rpn`` (Faster R-CNN only)
and ``head``. Faster R-CNN is trained end to end with *approximate joint
training*: the head learns from the current RPN's proposals, and no gradient
flows through the proposal boxes. Compile with ``OutputLoss`` on each output;
Keras then logs ``rpn_loss`` and ``head_loss`` per epoch (the layers computing
them are named ``rpn_loss`` and ``head_loss``).

Example:
    >>> train_model = two_stage_training_model(model, num_classes=10)
    >>> train_model.compile("adam", loss={"rpn": OutputLoss(), "head": OutputLoss()})
"""

from __future__ import annotations

import keras

from models.fast_rcnn import FastRcnnLoss
from models.roi_sampling import ProposalTargets
from models.rpn import Proposals, RpnLoss


@keras.saving.register_keras_serializable(package="convforge")
class OutputLoss(keras.losses.Loss):
    """The loss a model already computed (its output, per image); ``y_true`` is ignored."""

    def __init__(self, name: str = "output_loss", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return y_pred


def two_stage_training_model(model: keras.Model, num_classes: int, max_boxes: int = 16, rois_per_image: int = 32,
                             fg_fraction: float = 0.25, rpn_batch: int = 64, train_proposals: int = 64,
                             box_weight: float = 1.0, seed: int | None = None) -> keras.Model:
    """The training graph of a ``fast_rcnn`` or ``faster_rcnn`` model (see the module doc).

    Inputs (dict): ``image``, ``gt_boxes``, ``gt_classes`` and, for Fast R-CNN,
    ``proposals``. Outputs (dict): ``head`` and, for Faster R-CNN, ``rpn``.
    """
    shape = model.inputs[0].shape[1:]
    image = keras.Input(shape, dtype="uint8", name="image")
    gt_boxes = keras.Input((max_boxes, 4), name="gt_boxes")
    gt_classes = keras.Input((max_boxes,), dtype="int32", name="gt_classes")
    inputs = {"image": image, "gt_boxes": gt_boxes, "gt_classes": gt_classes}
    features = model.get_layer("trunk")(image)
    outputs = {}
    names = {layer.name for layer in model.layers}
    if "rpn" in names:
        obj, deltas = model.get_layer("rpn")(features)
        outputs["rpn"] = RpnLoss(model.get_layer("proposals").anchors, rpn_batch, box_weight=box_weight, seed=seed,
                                 name="rpn_loss")([obj, deltas, gt_boxes, gt_classes])
        inference = model.get_layer("proposals").get_config()
        proposals, _ = Proposals(inference["anchors"], train_proposals, inference["pre_nms"],
                                 inference["iou_threshold"], inference["min_size"], name="train_proposals")([obj, deltas])
    else:
        proposals = inputs["proposals"] = keras.Input((None, 4), name="proposals")
    rois, labels, targets = ProposalTargets(num_classes, rois_per_image, fg_fraction, seed=seed,
                                            name="proposal_targets")([proposals, gt_boxes, gt_classes])
    pooled = model.get_layer("roi_pool")([features, rois])
    logits, box_deltas = model.get_layer("head")(pooled)
    outputs["head"] = FastRcnnLoss(num_classes, box_weight, name="head_loss")([logits, box_deltas, labels, targets])
    return keras.Model(inputs, outputs, name=f"{model.name}_training")


def stage_names(training_model: keras.Model) -> tuple[str, ...]:
    """The training graph's output keys: ``("rpn", "head")`` for Faster R-CNN, ``("head",)`` for Fast R-CNN."""
    return ("rpn", "head") if any(layer.name == "rpn_loss" for layer in training_model.layers) else ("head",)
