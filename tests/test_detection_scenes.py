"""Scene generator: seeded, exact boxes and landmarks on real pixels; VOC/COCO/YOLO files read back."""

import cv2
import numpy as np
import pytest

from pipelines.annotations import read_coco, read_voc, read_yolo
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
    for b, c, m in zip(scenes.boxes, scenes.classes, scenes.landmarks, strict=False):
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


def test_written_datasets_load_through_the_annotation_readers(scenes, tmp_path):
    h, w = scenes.images.shape[1:3]
    pixels = [np.round(b * [h, w, h, w]) / [h, w, h, w] for b in scenes.boxes]  # files hold whole pixels
    readers = {
        "voc": read_voc(write_voc(scenes, tmp_path / "voc"), split="train", class_names=scenes.class_names),
        "coco": read_coco(write_coco(scenes, tmp_path / "coco")),
        "yolo": read_yolo(write_yolo(scenes, tmp_path / "yolo")),
    }
    for kind, ann in readers.items():
        assert not ann.skipped and ann.class_names == scenes.class_names and len(ann.paths) == len(scenes), kind
        for i, path in enumerate(ann.paths):
            np.testing.assert_allclose(ann.boxes[i], pixels[i], atol=1e-6, err_msg=kind)
            np.testing.assert_array_equal(ann.labels[i], scenes.classes[i])
            image = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
            np.testing.assert_array_equal(image, scenes.images[i])  # PNG: the generated pixels exactly
    coco = readers["coco"]
    for i in range(len(scenes)):
        np.testing.assert_allclose(coco.keypoints[i], scenes.landmarks[i], atol=0.01)


def test_detection_task_reads_a_written_dataset(scenes, tmp_path):
    from tasks.problems.detection import load_scene_splits

    write_yolo(scenes, tmp_path / "yolo")
    train, val, test = load_scene_splits(f"yolo:{tmp_path / 'yolo'}", [128, 128], {}, seed=0,
                                         val_fraction=0.2, test_fraction=0.2)
    assert (len(train), len(val), len(test)) == (8, 2, 2)
    for part in (train, val, test):
        for image, boxes in zip(part.images, part.boxes, strict=False):
            i = next(j for j in range(len(scenes)) if np.array_equal(scenes.images[j], image))
            np.testing.assert_allclose(boxes, scenes.boxes[i], atol=1 / 256)


def test_scenes_command_writes_a_dataset_the_readers_load(tmp_path):
    from tasks.cli.main import main

    assert main(["scenes", str(tmp_path / "voc"), "--format", "voc", "--count", "3", "--seed", "5"]) == 0
    ann = read_voc(tmp_path / "voc", split="train")
    assert len(ann.paths) == 3 and all(1 <= len(b) <= 4 for b in ann.boxes) and not ann.skipped
    assert main(["scenes", str(tmp_path / "x"), "--objects", "no_such_set"]) == 2
