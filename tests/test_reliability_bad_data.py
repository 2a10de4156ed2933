"""Bad data in every reader: corrupt, truncated, zero-byte, wrong-format and decompression-bomb
images, malformed annotation lines and paths escaping the root are skipped and counted; a full
pass over each reader's tf.data pipeline never stops; a 5%-corrupt folder trains to completion."""

import json
import os
import time
from collections import Counter

import mlflow
import numpy as np
import pytest
import tensorflow as tf
import yaml
from reliability_faults import (
    BAD_IMAGES,
    BILLION_LAUGHS,
    EXTERNAL_ENTITY,
    encode,
    expected_skips,
    real_images,
    write_bad_images,
)

from pipelines.annotations import detection_dataset, read_coco, read_voc, read_yolo
from pipelines.identities import identity_dataset, identity_folder
from pipelines.sources import csv_manifest, image_folder
from pipelines.splits import load_splits
from pipelines.tfrecord import example, files_items, read_shards, write_shards
from tasks.cli.main import main

IMAGES, LABELS = real_images(12, 16)


def _good(folder, n, prefix="img"):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        paths.append(folder / f"{prefix}{i}.png")
        paths[-1].write_bytes(encode(IMAGES[i % len(IMAGES)]))
    return paths


def _outside(tmp_path):
    target = tmp_path / "outside" / "secret.png"
    target.parent.mkdir(exist_ok=True)
    target.write_bytes(encode(IMAGES[0]))
    return target


def _drain(ds) -> int:
    return sum(1 for _ in ds)


def test_image_folder_and_identities(tmp_path):
    root = tmp_path / "people"
    for person in ("ada", "bob", "cy"):
        _good(root / person, 3)
    write_bad_images(root / "ada")
    os.symlink(_outside(tmp_path), root / "bob" / "link_out.png")
    files = image_folder(root)
    assert len(files.paths) == 9
    assert dict(files.skipped) == {**expected_skips(), "escapes_root": 1}
    assert _drain(load_splits(f"folder:{root}", seed=0, val_fraction=0, test_fraction=0).train) == 9
    people = identity_folder(root, min_images=3)
    assert len(people.paths) == 9 and people.skipped == files.skipped
    assert _drain(identity_dataset(people, image_size=(16, 16))) == 9


def test_csv_manifest_with_malformed_lines(tmp_path):
    good = _good(tmp_path / "data" / "x", 4)
    bad = write_bad_images(tmp_path / "data" / "x")
    lines = ["path,label"] + [f"x/{p.name},{k % 2}" for k, p in enumerate(good + list(bad.values()))]
    lines += [",", "x/img0.png", "x/img1.png,", "../outside/secret.png,1", "/etc/passwd,0",
              "x/missing.png,1", "\x00\x01garbage,\x7f", '"unterminated quote swallows the rest,1']
    _outside(tmp_path)
    (tmp_path / "data" / "m.csv").write_text("\n".join(lines) + "\n")
    files = csv_manifest(tmp_path / "data" / "m.csv")
    assert len(files.paths) == 4
    skipped = Counter(files.skipped)
    for reason, n in expected_skips().items():
        assert skipped[reason] == n
    assert skipped["escapes_root"] == 3  # ../, an absolute path and a path with a NUL byte
    assert skipped["bad_manifest_line"] == 4 and skipped["unreadable"] == 1
    assert _drain(load_splits(f"csv:{tmp_path / 'data' / 'm.csv'}", seed=0, val_fraction=0, test_fraction=0).train) == 4


def test_tfrecord_bad_records_and_damaged_shard(tmp_path):
    good = _good(tmp_path / "src", 6)
    bad = write_bad_images(tmp_path / "src")
    paths = [str(p) for p in good + list(bad.values())]
    write_shards(files_items(paths, [0] * len(paths)), tmp_path / "tfr", shards=2, class_names=["a"], channels=3)
    meta = json.loads((tmp_path / "tfr" / "dataset.json").read_text())
    assert meta["count"] == 6 and meta["skipped"] == expected_skips()
    assert _drain(read_shards(tmp_path / "tfr").dataset) == 6
    # shards written by someone else, bypassing the checks: every bad kind inside, then a cut-off tail
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    with tf.io.TFRecordWriter(str(hostile / "data-00000-of-00001.tfrecord")) as w:
        for data, _ in BAD_IMAGES.values():
            w.write(example(data, 0))
        w.write(b"not a tf.Example at all")
        for p in good:
            w.write(example(p.read_bytes(), 1))
    start = time.perf_counter()
    assert _drain(read_shards(hostile, channels=3).dataset) == 6  # bomb refused before allocation
    shard = hostile / "data-00000-of-00001.tfrecord"
    shard.write_bytes(shard.read_bytes()[:-40])  # truncated file: the last record is lost, not the epoch
    assert _drain(read_shards(hostile, channels=3).dataset) == 5
    assert time.perf_counter() - start < 30


def _voc_xml(filename, boxes, w=16, h=16):
    objs = "".join(f"<object><name>{n}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax>"
                   f"<ymax>{b[3]}</ymax></bndbox></object>" for n, b in boxes)
    return f"<annotation><filename>{filename}</filename><size><width>{w}</width><height>{h}</height></size>{objs}</annotation>"


def test_voc_bad_images_malformed_xml_entities_and_escapes(tmp_path):
    root = tmp_path / "voc"
    good = _good(root / "JPEGImages", 4)
    bad = write_bad_images(root / "JPEGImages")
    (root / "Annotations").mkdir()
    for p in good + list(bad.values()):
        (root / "Annotations" / f"{p.stem}.xml").write_text(_voc_xml(p.name, [("cat", (2, 2, 10, 10))]))
    ann_dir = root / "Annotations"
    (ann_dir / "broken.xml").write_text("<annotation><filename>img0.png</filename><size>")
    (ann_dir / "empty.xml").write_text("")
    (ann_dir / "nosize.xml").write_text("<annotation><filename>img0.png</filename></annotation>")
    (ann_dir / "badbox.xml").write_text(_voc_xml("img1.png", [("cat", ("a", 2, 10, 10)), ("cat", (12, 2, 3, 10)), ("", (1, 1, 4, 4))]))
    (ann_dir / "escape.xml").write_text(_voc_xml("../../outside/secret.png", [("cat", (1, 1, 4, 4))]))
    (ann_dir / "laughs.xml").write_text(BILLION_LAUGHS)
    (ann_dir / "xxe.xml").write_text(EXTERNAL_ENTITY)
    _outside(tmp_path)
    start = time.perf_counter()
    ann = read_voc(root)
    assert time.perf_counter() - start < 10  # entity expansion refused by the parser, not computed
    assert all("root:" not in str(p) for p in ann.paths)  # the external entity was never read
    skipped = Counter(ann.skipped)
    for reason, n in expected_skips().items():
        assert skipped[reason] == n
    assert skipped["bad_annotation"] >= 5 and skipped["escapes_root"] == 1 and skipped["bad_box"] == 3
    assert len(ann.paths) == 5  # 4 good files + img1.png again (badbox.xml: its valid boxes were none, image kept)
    assert _drain(detection_dataset(ann)) == 5
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "train.txt").write_text("img0\n../../outside/secret\nimg2\n")
    split = read_voc(root, split="train")
    assert len(split.paths) == 2 and split.skipped["escapes_root"] == 1
    with pytest.raises(ValueError, match="escapes"):
        read_voc(root, split="../../../etc/passwd")


def test_coco_bad_images_malformed_entries_and_escapes(tmp_path):
    good = _good(tmp_path / "images", 4)
    bad = write_bad_images(tmp_path / "images")
    _outside(tmp_path)
    files = [p.name for p in good + list(bad.values())] + ["../outside/secret.png", "/etc/passwd"]
    images = [{"id": i, "file_name": f, "width": 16, "height": 16} for i, f in enumerate(files)]
    anns = [{"id": i, "image_id": i, "category_id": 1, "bbox": [1, 1, 8, 8]} for i in range(len(files))]
    anns += [{"id": 90, "image_id": 999, "category_id": 1, "bbox": [1, 1, 2, 2]},   # unknown image
             {"id": 91, "image_id": 0, "category_id": 7, "bbox": [1, 1, 2, 2]},     # unknown category
             {"id": 92, "image_id": 0, "category_id": 1, "bbox": "nan"},           # not a box
             {"id": 93, "image_id": 0, "category_id": 1, "bbox": [1, 1, -5, 2]},   # negative size
             "not even a dict", None]
    raw = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "digit"}]}
    (tmp_path / "ann.json").write_text(json.dumps(raw))
    ann = read_coco(tmp_path / "ann.json")
    skipped = Counter(ann.skipped)
    for reason, n in expected_skips().items():
        assert skipped[reason] == n
    assert skipped["escapes_root"] == 2 and skipped["bad_box"] == 6
    assert len(ann.paths) == 4 and _drain(detection_dataset(ann)) == 4
    (tmp_path / "ann.json").write_text('{"images": [')  # a truncated JSON file: one clean ValueError
    with pytest.raises(ValueError, match="cannot be read"):
        read_coco(tmp_path / "ann.json")


def test_yolo_bad_images_malformed_lines_and_symlinks_out(tmp_path):
    root = tmp_path / "yolo"
    good = _good(root / "images", 4)
    bad = write_bad_images(root / "images")
    os.symlink(_outside(tmp_path), root / "images" / "link_out.png")
    (root / "labels").mkdir()
    (root / "classes.txt").write_text("digit\nother\n")
    for p in good + list(bad.values()):
        (root / "labels" / f"{p.stem}.txt").write_text("0 0.5 0.5 0.4 0.4\n")
    (root / "labels" / "img0.txt").write_text(
        "0 0.5 0.5 0.4 0.4\n1 0.5\nx 0.5 0.5 0.1 0.1\n7 0.5 0.5 0.1 0.1\n-1 0.5 0.5 0.1 0.1\n0 nan 0.5 0.1 0.1\n"
        "0 0.5 0.5 3 3\n\x00\xff\n0 1e999 0 0 0\n")
    ann = read_yolo(root)
    skipped = Counter(ann.skipped)
    for reason, n in expected_skips().items():
        assert skipped[reason] == n
    assert skipped["escapes_root"] == 1 and skipped["bad_label_line"] == 5 and skipped["bad_box"] == 3
    assert len(ann.paths) == 4 and [len(b) for b in ann.boxes] == [1, 1, 1, 1]
    assert _drain(detection_dataset(ann)) == 4


def test_five_percent_corrupt_folder_trains_to_completion_with_counts_in_mlflow(tmp_path, mlflow_store, workdir):
    images, labels = real_images(100, 16, seed=3)
    root = tmp_path / "digits"
    for i, (im, lb) in enumerate(zip(images, labels, strict=True)):
        (root / str(lb % 2)).mkdir(parents=True, exist_ok=True)
        (root / str(lb % 2) / f"{i}.png").write_bytes(encode(im))
    write_bad_images(root / "0")  # 5 bad files among 105: about 5%
    recipe = {"task": "classification", "data": {"dataset": f"folder:{root}", "val_fraction": 0.1},
              "model": {"name": "lenet5"}, "train": {"epochs": 2, "batch_size": 16}, "export": {"enabled": False}}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    assert main(["train", str(tmp_path / "r.yaml"), "--workdir", str(tmp_path)]) == 0
    run = mlflow.search_runs(search_all_experiments=True, output_format="list")[0]
    assert run.info.status == "FINISHED"
    assert {k: v for k, v in run.data.metrics.items() if k.startswith("skipped_")} == {
        f"skipped_{reason}": float(n) for reason, n in expected_skips().items()}
    assert np.isfinite(run.data.metrics["test_accuracy"])
