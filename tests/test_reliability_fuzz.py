"""Fuzzing with hypothesis: random and mutated VOC XML, COCO JSON, YOLO txt, CSV manifests,
recipe YAML, image bytes and model files fed to the readers and the CLI (in-process
``tasks.cli.main.main``). Only clean errors (ValueError from readers, exit code 2 from the CLI),
never an uncaught exception or a hang (every example has a deadline)."""

import json
import shutil
import tempfile
from pathlib import Path

import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_faults import BAD_IMAGES, encode, real_images

from pipelines.annotations import read_coco, read_voc, read_yolo
from pipelines.decode import check_image_bytes, decode_image
from pipelines.sources import csv_manifest
from tasks.cli.main import main
from tasks.core.errors import UserError
from tasks.core.recipe import load_recipe

FUZZ = settings(max_examples=40, deadline=15000, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
GOOD_PNG = encode(real_images(1, 16)[0][0])
GOOD_JPEG = encode(real_images(1, 16)[0][0], "JPEG")
VOC = ("<annotation><filename>a.png</filename><size><width>16</width><height>16</height></size><object><name>cat"
       "</name><bndbox><xmin>2</xmin><ymin>3</ymin><xmax>9</xmax><ymax>12</ymax></bndbox></object></annotation>")
COCO = json.dumps({"images": [{"id": 1, "file_name": "a.png", "width": 16, "height": 16}],
                   "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 5, 6]}],
                   "categories": [{"id": 1, "name": "cat"}]})
RECIPE = "task: classification\ndata:\n  dataset: digits\n  train_limit: 10\nmodel:\n  name: lenet5\ntrain:\n  epochs: 1\n"


def mutated(seed: str) -> st.SearchStrategy[str]:
    """``seed`` with random slices replaced, deleted or duplicated (structure-aware enough to pass a parser often)."""
    @st.composite
    def build(draw):
        text = seed
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(text)))
            j = draw(st.integers(i, min(len(text), i + 12)))
            op = draw(st.sampled_from(["replace", "delete", "duplicate"]))
            if op == "replace":
                text = text[:i] + draw(st.text(max_size=8)) + text[j:]
            elif op == "delete":
                text = text[:i] + text[j:]
            else:
                text = text[:j] + text[i:j] + text[j:]
        return text
    return build()


def mutated_bytes(seed: bytes) -> st.SearchStrategy[bytes]:
    @st.composite
    def build(draw):
        data = bytearray(seed)
        for _ in range(draw(st.integers(1, 6))):
            i = draw(st.integers(0, max(0, len(data) - 1)))
            data[i:i + draw(st.integers(0, 4))] = draw(st.binary(max_size=4))
        if draw(st.booleans()):
            data = data[: draw(st.integers(0, len(data)))]
        return bytes(data)
    return build()


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=10),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                        st.sampled_from(["images", "annotations", "categories", "id", "image_id", "category_id",
                                         "bbox", "file_name", "width", "height", "name", "iscrowd", "keypoints"]),
                        inner, max_size=5), max_leaves=20)


class Workspace:
    """A fresh folder per example with one good image at the usual places."""

    def __enter__(self) -> Path:
        self.path = Path(tempfile.mkdtemp(prefix="fuzz-"))
        for sub in ("JPEGImages", "images", "data/x"):
            (self.path / sub).mkdir(parents=True)
            (self.path / sub / "a.png").write_bytes(GOOD_PNG)
        return self.path

    def __exit__(self, *exc):
        shutil.rmtree(self.path, ignore_errors=True)


@FUZZ
@given(st.one_of(mutated(VOC), st.text(max_size=200)))
def test_voc_reader(xml):
    with Workspace() as root:
        (root / "Annotations").mkdir()
        (root / "Annotations" / "a.xml").write_bytes(xml.encode("utf-8", "surrogatepass"))
        ann = read_voc(root)
        assert len(ann.paths) + sum(ann.skipped.values()) >= 1


@FUZZ
@given(st.one_of(mutated(COCO), JSON.map(json.dumps), st.text(max_size=100)))
def test_coco_reader(text):
    with Workspace() as root:
        (root / "ann.json").write_bytes(text.encode("utf-8", "surrogatepass"))
        try:
            read_coco(root / "ann.json")
        except ValueError:
            pass  # the one clean error for a file that is not a COCO document


@FUZZ
@given(st.one_of(mutated("0 0.5 0.5 0.2 0.3\n1 0.1 0.2 0.05 0.05\n"), st.text(max_size=120)),
       st.one_of(st.just("cat\ndog\n"), st.text(max_size=30)))
def test_yolo_reader(labels, classes):
    with Workspace() as root:
        (root / "labels").mkdir()
        (root / "labels" / "a.txt").write_bytes(labels.encode("utf-8", "surrogatepass"))
        (root / "classes.txt").write_bytes(classes.encode("utf-8", "surrogatepass"))
        read_yolo(root)


@FUZZ
@given(st.one_of(mutated("path,label\nx/a.png,cat\nx/a.png,dog\n"), st.text(max_size=120)))
def test_csv_manifest_reader_and_data_pack_cli(text):
    with Workspace() as root:
        manifest = root / "data" / "m.csv"
        manifest.write_bytes(text.encode("utf-8", "surrogatepass"))
        try:
            csv_manifest(manifest)
        except ValueError:
            pass
        assert main(["data", "pack", f"csv:{manifest}", str(root / "out"), "--shards", "1"]) in (0, 2)


@FUZZ
@given(st.one_of(mutated(RECIPE), st.text(max_size=120)))
def test_recipe_yaml_and_train_cli(text):
    with Workspace() as root:
        path = root / "r.yaml"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        try:
            load_recipe(str(path))
        except UserError:
            assert main(["train", str(path), "--workdir", str(root)]) == 2  # refused before any training


@settings(max_examples=60, deadline=15000, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(st.one_of(mutated_bytes(GOOD_PNG), mutated_bytes(GOOD_JPEG), st.binary(max_size=300),
                 st.sampled_from([data for data, _ in BAD_IMAGES.values()])))
def test_image_bytes_check_and_decode(data):
    check_image_bytes(data)  # never raises
    try:
        assert DECODE(tf.constant(data)).shape == (8, 8, 3)
    except tf.errors.InvalidArgumentError:
        pass  # the graph's clean refusal (dropped by ignore_errors in every pipeline)


DECODE = tf.function(lambda d: decode_image(d, 3, (8, 8)), input_signature=[tf.TensorSpec([], tf.string)])


@settings(max_examples=25, deadline=15000, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(st.data())
def test_model_files_through_the_cli(data):
    blob = data.draw(st.one_of(mutated_bytes(_model_bytes()), st.binary(max_size=200)))
    with Workspace() as root:
        (root / "m.keras").write_bytes(blob)
        assert main(["info", str(root / "m.keras")]) in (0, 2)


_MODEL: list[bytes] = []


def _model_bytes() -> bytes:
    if not _MODEL:
        import models

        with tempfile.TemporaryDirectory() as tmp:
            models.build("lenet5", (28, 28, 1), 10).save(Path(tmp) / "m.keras")
            _MODEL.append((Path(tmp) / "m.keras").read_bytes())
    return _MODEL[0]
