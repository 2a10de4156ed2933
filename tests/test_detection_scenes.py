"""Scene generator: seeded, exact boxes and landmarks on real pixels; VOC/COCO/YOLO files read back."""

import json
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest

from pipelines.catalog import load_arrays
from pipelines.detection_writers import write_coco, write_voc, write_yolo
from pipelines.scenes import background_photos, make_scenes, mask_landmarks, paste_object


@pytest.fixture(scope="module")
def data():
    return load_arrays("fashion_mnist")


@pytest.fixture(scope="module")
def scenes(data):
    return make_scenes(data.x_train[:300], data.y_train[:300], background_photos(), 12, seed=3,
                       class_names=data.class_names)


def test_scenes_are_seeded_and_labelled(data, scenes):
    again = make_scenes(data.x_train[:300], data.y_train[:300], background_photos(), 12, seed=3)
    np.testing.assert_array_equal(again.images, scenes.images)
    other = make_scenes(data.x_train[:300], data.y_train[:300], background_photos(), 12, seed=4)
    assert not np.array_equal(other.images, scenes.images)
    assert scenes.images.shape == (12, 128, 128, 3) and scenes.images.dtype == np.uint8
    for b, c, m in zip(scenes.boxes, scenes.classes, scenes.landmarks):
        assert 1 <= len(b) <= 4 and len(c) == len(b) and m.shape == (len(b), 5, 2)
        assert np.all((b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])) and np.all((b >= 0) & (b <= 1))
        # every landmark lies inside its object's box
        assert np.all((m[..., 0] >= b[:, None, 1]) & (m[..., 0] <= b[:, None, 3]))
        assert np.all((m[..., 1] >= b[:, None, 0]) & (m[..., 1] <= b[:, None, 2]))


def test_pasted_object_box_is_the_tight_box_of_its_ink(data):
    canvas = np.full((64, 64, 3), 100, np.uint8)
    obj = data.x_train[1][..., 0]  # a real Fashion-MNIST item
    box, marks = paste_object(canvas, obj, 10, 20, 28, 28, np.array([1.0, 0.5, 0.25]))
    changed = np.any(canvas != 100, axis=-1)
    ink = cv2.resize(obj.astype(np.float32), (28, 28)) / 40.0 > 0.5
    ys, xs = np.nonzero(ink)
    np.testing.assert_array_equal(box, [10 + ys.min(), 20 + xs.min(), 10 + ys.max() + 1, 20 + xs.max() + 1])
    y0, x0, y1, x1 = box.astype(int)
    assert changed[y0:y1, x0:x1].mean() > 0.5
    assert not changed[:10].any() and not changed[:, :20].any()  # nothing drawn outside the paste region
    np.testing.assert_allclose(marks[0], [20 + xs.mean() + 0.5, 10 + ys.mean() + 0.5])


def test_mask_landmarks_of_a_triangle():
    mask = np.zeros((10, 10), bool)
    for r in range(2, 8):
        mask[r, 5 - (r - 2) // 2 : 6 + (r - 2) // 2] = True  # apex at the top, base at row 7
    marks = mask_landmarks(mask)
    np.testing.assert_allclose(marks[1], [5.5, 2.5])  # top: apex pixel centre
    np.testing.assert_allclose(marks[2], [5.5, 7.5])  # bottom: middle of the base row
    assert marks[3][0] < marks[0][0] < marks[4][0]  # left < centroid < right


def test_written_datasets_hold_the_exact_boxes(scenes, tmp_path):
    h, w = scenes.images.shape[1:3]
    pixels = [np.round(b * [h, w, h, w]) for b in scenes.boxes]
    coco = json.loads(write_coco(scenes, tmp_path / "coco").read_text())
    for i, b in enumerate(pixels):
        anns = [a for a in coco["annotations"] if a["image_id"] == i + 1]
        got = np.array([[a["bbox"][1], a["bbox"][0], a["bbox"][1] + a["bbox"][3], a["bbox"][0] + a["bbox"][2]] for a in anns])
        np.testing.assert_array_equal(got, b)
        assert [a["category_id"] - 1 for a in anns] == list(scenes.classes[i])
        image = cv2.cvtColor(cv2.imread(str(tmp_path / "coco" / "images" / coco["images"][i]["file_name"])), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(image, scenes.images[i])  # PNG: lossless
    root = write_voc(scenes, tmp_path / "voc")
    ids = (root / "ImageSets" / "Main" / "train.txt").read_text().split()
    for i, name in enumerate(ids):
        objects = ET.parse(root / "Annotations" / f"{name}.xml").findall("object")
        got = np.array([[int(o.find(f"bndbox/{k}").text) for k in ("ymin", "xmin", "ymax", "xmax")] for o in objects])
        np.testing.assert_array_equal(got - [1, 1, 0, 0], pixels[i])  # VOC is 1-based inclusive
        assert [o.find("name").text for o in objects] == [scenes.class_names[c] for c in scenes.classes[i]]
    root = write_yolo(scenes, tmp_path / "yolo")
    for i in range(len(scenes)):
        rows = np.loadtxt(root / "labels" / f"{i:06d}.txt", ndmin=2)
        cx, cy, bw, bh = rows[:, 1] * w, rows[:, 2] * h, rows[:, 3] * w, rows[:, 4] * h
        np.testing.assert_allclose(np.stack([cy - bh / 2, cx - bw / 2, cy + bh / 2, cx + bw / 2], 1), pixels[i], atol=1e-3)
        np.testing.assert_array_equal(rows[:, 0], scenes.classes[i])
