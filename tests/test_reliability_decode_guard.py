"""One decode guard for every path: the header's pixel count is checked before decoding, against
one configurable limit, in tf.data, inside the exported ``serving_bytes`` graph and in every Pillow
path (faces, style); GIF and BMP decode on 1-channel models; the CLI answers bad images in one line."""

import io

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from reliability_faults import encode, header_bomb, real_images, real_png_bomb

from pipelines.decode import MAX_PIXELS_ENV, ImageTooLarge, check_image_bytes, decode_image, open_image
from pipelines.face_crops import load_rgb
from serving.export import export_classifier
from serving.loader import predict_bytes
from tasks.cli.main import main

GREY = real_images(1, 28)[0][0][..., 0]


@pytest.fixture(scope="module")
def grey_export(tmp_path_factory):
    """A 1-channel LeNet-5 export (28x28x1), like the fashion_mnist recipes write."""
    import keras

    import models

    keras.utils.set_random_seed(0)
    root = tmp_path_factory.mktemp("exp")
    export_classifier(models.build("lenet5", (28, 28, 1), 10), root, "m", [str(i) for i in range(10)], decode=decode_image)
    return root / "m"


def _encoded(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.repeat(GREY[..., None], 3, -1)).save(buf, fmt)
    return buf.getvalue()


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_serving_bytes_refuses_a_real_bomb_before_decoding_it(grey_export):
    from serving.loader import load_export

    served = load_export(grey_export)
    bomb = real_png_bomb(9000, 9000)  # 79 KB of PNG, 81 Mpx: decodable, so an unguarded graph allocates it
    with pytest.raises(tf.errors.InvalidArgumentError, match="image header claims more than 64000000 pixels"):
        predict_bytes(served, [bomb])
    assert predict_bytes(served, [encode(GREY)])["probabilities"].shape == (1, 10)


@pytest.mark.parametrize("fmt", ["GIF", "BMP"])
def test_gif_and_bmp_on_a_one_channel_export_match_png(grey_export, fmt):
    from serving.loader import load_export

    served = load_export(grey_export)
    out = predict_bytes(served, [_encoded(fmt), _encoded("PNG")])["probabilities"]
    np.testing.assert_allclose(out[0], out[1], atol=2e-3)  # grey from RGB rounds like the PNG path


@pytest.mark.parametrize("fmt", ["gif", "bmp"])
def test_gif_and_bmp_through_predict_and_edges(grey_export, fmt, tmp_path, capsys):
    path = tmp_path / f"digit.{fmt}"
    path.write_bytes(_encoded(fmt.upper()))
    assert main(["predict", str(grey_export), str(path), "--top-k", "1"]) == 0
    assert capsys.readouterr().out.startswith(f"{path}: ")
    assert main(["edges", str(path), "-o", str(tmp_path / "e.png")]) == 0
    assert (tmp_path / "e.png").stat().st_size > 1000


def test_the_limit_is_configurable_and_the_same_everywhere(tmp_path, monkeypatch):
    small = encode(real_images(1, 40)[0][0])  # 40 x 40 = 1600 px
    monkeypatch.setenv(MAX_PIXELS_ENV, "1000")
    assert check_image_bytes(small) == "too_many_pixels"
    ds = tf.data.Dataset.from_tensors(small).map(lambda d: decode_image(d, 3, (8, 8))).ignore_errors()
    assert sum(1 for _ in ds) == 0
    with pytest.raises(ImageTooLarge, match="40x40 pixels, over the limit of 1,000"):
        load_rgb(small)
    import models
    from serving.loader import load_export

    path = export_classifier(models.build("lenet5", (28, 28, 3), 2), tmp_path, "m", ["a", "b"], decode=decode_image)
    with pytest.raises(tf.errors.InvalidArgumentError, match="more than 1000 pixels"):
        predict_bytes(load_export(path), [small])
    monkeypatch.setenv(MAX_PIXELS_ENV, "2000")
    assert check_image_bytes(small) is None and load_rgb(small).shape == (40, 40, 3)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fmt=st.sampled_from(["png", "gif", "bmp"]), width=st.integers(1, 3000), height=st.integers(1, 3000),
       limit=st.integers(1, 4_000_000))
def test_python_and_graph_guards_agree_on_every_header(monkeypatch, fmt, width, height, limit):
    monkeypatch.setenv(MAX_PIXELS_ENV, str(limit))
    data = header_bomb(fmt, width, height)
    over = width * height > limit
    assert (check_image_bytes(data) == "too_many_pixels") == over
    try:
        decode_image(tf.constant(data), 3, None)
        refused = False
    except tf.errors.InvalidArgumentError as err:
        refused = "claims more than" in err.message
    assert refused == over
    if over:
        with pytest.raises(ImageTooLarge):
            with open_image(data):
                pass


def test_pillow_bombs_are_one_line_errors_in_faces_and_style(tmp_path, capsys, mlflow_store):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(real_png_bomb(20000, 10000))  # 200 Mpx: over Pillow's own 179 Mpx DecompressionBombError
    with pytest.raises(ImageTooLarge, match="bomb.png claims too many pixels"):
        load_rgb(str(bomb))
    assert main(["style", str(bomb), "chelsea", "-o", str(tmp_path / "g.png"), "--steps", "1"]) == 2
    assert "bomb.png" in one_error_line(capsys)
    mid = tmp_path / "mid.png"
    mid.write_bytes(real_png_bomb(9000, 9000))  # 81 Mpx: under Pillow's error, over our 64 Mpx limit
    with pytest.raises(ImageTooLarge, match="9000x9000 pixels"):
        load_rgb(str(mid))


def test_edges_small_images_and_bad_outputs_are_one_line_errors(tmp_path, capsys):
    tiny = tmp_path / "tiny.png"
    tiny.write_bytes(encode(np.zeros((1, 1, 3), np.uint8)))
    assert main(["edges", str(tiny), "-o", str(tmp_path / "e.png")]) == 2
    assert "1x1 pixels" in one_error_line(capsys)
    good = tmp_path / "good.png"
    good.write_bytes(encode(GREY))
    assert main(["edges", str(good), "-o", str(tmp_path)]) == 2
    assert "is a folder" in one_error_line(capsys)
    assert main(["edges", str(good), "-o", str(tmp_path / "x.txt")]) == 2
    assert "must end in" in one_error_line(capsys)


def test_predict_names_an_image_whose_body_is_corrupt(grey_export, tmp_path, capsys):
    data = bytearray(encode(real_images(1, 64, seed=3)[0][0]))
    data[60:-20] = bytes(len(data) - 80)  # valid header and IEND trailer, garbage body
    bad, good = tmp_path / "bad.png", tmp_path / "good.png"
    bad.write_bytes(bytes(data))
    good.write_bytes(encode(GREY))
    assert check_image_bytes(bytes(data)) is None  # passes the cheap check: only decoding finds it
    assert main(["predict", str(grey_export), str(good), str(bad)]) == 2
    assert "bad.png cannot be decoded" in one_error_line(capsys)


def test_a_bad_pixel_limit_setting_is_one_line(grey_export, tmp_path, capsys, monkeypatch):
    image = tmp_path / "digit.png"
    image.write_bytes(encode(GREY))
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    assert main(["predict", str(grey_export), str(image)]) == 2
    assert MAX_PIXELS_ENV in one_error_line(capsys)
