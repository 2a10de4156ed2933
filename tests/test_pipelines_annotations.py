"""Annotation readers on real files (generated scenes: real objects on real photos),
including corrupt images and malformed annotation lines: skipped and counted."""

import json

import numpy as np
import pytest

from pipelines.annotations import detection_dataset, read_coco, read_voc, read_yolo
from pipelines.augment import augment_dataset
from pipelines.catalog import FASHION_CLASSES, load_arrays
from pipelines.detection_writers import write_coco, write_voc, write_yolo
from pipelines.scenes import background_photos, make_scenes


@pytest.fixture(scope="module")
def scenes():
    fm = load_arrays("fashion_mnist")
    return make_scenes(fm.x_test[:50], fm.y_test[:50], background_photos(), count=6, image_size=(64, 64),
                       object_size=(20, 30), seed=1, class_names=FASHION_CLASSES)


def _corrupt(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated PNG: no IEND


def _same_boxes(ann, scenes, index_of_image):
    for path, boxes, labels in zip(ann.paths, ann.boxes, ann.labels, strict=True):
        i = index_of_image(path)
        expected = np.round(scenes.boxes[i] * 64) / 64  # the writers store whole pixels
        np.testing.assert_allclose(boxes, expected, atol=1e-6)
        names = [ann.class_names[c] for c in labels]
        assert names == [scenes.class_names[c] for c in scenes.classes[i]]


def test_voc_reader_round_trips_and_counts_bad_files(tmp_path, scenes):
    root = write_voc(scenes, tmp_path / "voc")
    _corrupt(root / "JPEGImages" / "000001.png")
    (root / "Annotations" / "000002.xml").write_text("<annotation><filename>000002.png</filename")
    xml = (root / "Annotations" / "000003.xml").read_text()
    (root / "Annotations" / "000003.xml").write_text(xml.replace("<xmin>", "<xmin>oops", 1))
    (root / "Annotations" / "000004.xml").write_text(xml.replace("000003.png", "../../../etc/passwd"))
    ann = read_voc(root, class_names=FASHION_CLASSES)
    assert ann.skipped == {"truncated": 1, "bad_annotation": 1, "bad_box": 1, "escapes_root": 1}
    assert len(ann.paths) == 3
    index = lambda p: int(p[-10:-4])  # noqa: E731
    good = [i for i, p in enumerate(ann.paths) if index(p) != 3]
    sub = type(ann)([ann.paths[i] for i in good], [ann.boxes[i] for i in good], [ann.labels[i] for i in good], ann.class_names)
    _same_boxes(sub, scenes, index)


def test_coco_reader_reads_boxes_and_keypoints(tmp_path, scenes):
    path = write_coco(scenes, tmp_path / "coco")
    raw = json.loads(path.read_text())
    raw["annotations"][0]["bbox"] = [10, 10, -5, 4]          # negative width
    raw["annotations"].append({"id": 999, "image_id": 12345, "bbox": [0, 0, 1, 1], "category_id": 1})
    raw["images"].append({"id": 77, "file_name": "missing.png", "width": 64, "height": 64})
    path.write_text(json.dumps(raw))
    (tmp_path / "coco" / "images" / "000005.png").write_bytes(b"")
    ann = read_coco(path)
    assert ann.skipped == {"bad_box": 2, "unreadable": 1, "empty_file": 1}
    assert len(ann.paths) == 5 and ann.class_names == FASHION_CLASSES
    first = ann.paths.index(str((tmp_path / "coco" / "images" / "000000.png").resolve()))
    assert len(ann.boxes[first]) == len(scenes.boxes[0]) - 1
    k1 = ann.paths.index(str((tmp_path / "coco" / "images" / "000001.png").resolve()))
    np.testing.assert_allclose(ann.keypoints[k1], scenes.landmarks[1], atol=0.01)
    assert ann.visible[k1].all()


def test_yolo_reader_skips_bad_lines_and_feeds_augmentation(tmp_path, scenes):
    root = write_yolo(scenes, tmp_path / "yolo")
    label = root / "labels" / "000000.txt"
    label.write_text(label.read_text() + "3 0.5 0.5\nx 0.5 0.5 0.1 0.1\n42 0.5 0.5 0.1 0.1\n0 1.5 0.5 0.4 0.4\n\n")
    (root / "images" / "000002.png").write_bytes(b"not an image at all")
    ann = read_yolo(root)
    assert ann.skipped == {"bad_label_line": 3, "bad_box": 1, "not_an_image": 1}
    assert ann.class_names == FASHION_CLASSES and len(ann.paths) == 5
    _same_boxes(ann, scenes, lambda p: int(p[-10:-4]))
    ds = detection_dataset(ann, channels=3)
    policy = [{"rotate": {"degrees": 10}}, "mirror", {"colour_shift": {"shift": 10}}]
    out = list(augment_dataset(ds, policy, seed=3).as_numpy_iterator())
    assert len(out) == 5
    for e in out:
        assert e["image"].shape == (64, 64, 3) and len(e["boxes"]) == len(e["box_labels"])
        assert ((e["boxes"] >= 0) & (e["boxes"] <= 1)).all()


def test_coco_keypoints_feed_the_keypoint_dataset(tmp_path, scenes):
    ann = read_coco(write_coco(scenes, tmp_path / "coco"))
    assert ann.keypoints is not None
    e = next(detection_dataset(ann).as_numpy_iterator())
    i = 0  # the dataset keeps the annotation order
    k = ann.keypoints[i].shape[1]
    assert e["keypoints"].shape == (len(ann.boxes[i]) * k, 2) and e["keypoint_visible"].shape == (len(ann.boxes[i]) * k,)
    np.testing.assert_allclose(e["keypoints"], ann.keypoints[i].reshape(-1, 2), atol=1e-6)
    np.testing.assert_array_equal(e["keypoint_visible"], ann.visible[i].reshape(-1))
