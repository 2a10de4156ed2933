"""dlib's face ResNet in Keras equals dlib itself on real face chips; safe-mode reload; weights file checks."""

import numpy as np
import pytest
from faces_dlib_reference import dlib_descriptors, dlib_faces

from models.dlib_face_resnet import (
    WEIGHTS_SHA256,
    WeightsCorruptError,
    dlib_face_resnet,
    load_dlib_face_weights,
    package_weights_path,
)
from pipelines.face_api_package import FaceApiUnavailable
from pipelines.face_crops import load_rgb
from pipelines.sample_faces import bundled_photos, face_api_photos

TOLERANCE = 1e-3  # max |keras - dlib| over every descriptor component


@pytest.fixture(scope="module")
def encoder():
    return dlib_face_resnet(weights="dlib")


def _chips(paths):
    faces = [f for p in paths for f in dlib_faces(load_rgb(p))]
    return np.stack([f.chip for f in faces]), np.stack([f.descriptor for f in faces])


def test_port_equals_dlib_on_chips_from_the_bundled_photos(encoder, tmp_path):
    chips, reference = _chips(bundled_photos(tmp_path).values())
    assert len(chips) >= 2  # Eileen Collins and Grace Hopper (HOG may add a false face)
    ours = np.asarray(encoder(chips))
    worst = float(np.abs(ours - reference).max())
    print(f"max |keras - dlib| over {len(chips)} chips x 128: {worst:.2e}")
    assert ours.shape == (len(chips), 128) and worst <= TOLERANCE
    np.testing.assert_allclose(dlib_descriptors(chips), reference, atol=1e-6)  # dlib's batch form agrees with itself
    assert 0.9 < np.linalg.norm(ours, axis=1).mean() < 2.0  # raw descriptors: not unit length


def test_port_equals_dlib_on_the_face_api_group_photos(encoder):
    try:
        paths = face_api_photos()
    except FaceApiUnavailable as err:
        pytest.skip(str(err))
    chips, reference = _chips(paths)
    ours = np.asarray(encoder.predict(chips, batch_size=32, verbose=0))
    worst = float(np.abs(ours - reference).max())
    print(f"max |keras - dlib| over {len(chips)} chips of face-api's demo photos: {worst:.2e}")
    assert len(chips) >= 20 and worst <= TOLERANCE
    d = np.linalg.norm(ours[:, None] - ours[None], axis=-1)[np.triu_indices(len(ours), 1)]
    d_ref = np.linalg.norm(reference[:, None] - reference[None], axis=-1)[np.triu_indices(len(ours), 1)]
    np.testing.assert_array_equal(d <= 0.6, d_ref <= 0.6)  # every same/different decision is dlib's


def test_architecture_shapes_and_safe_mode_reload(encoder, tmp_path):
    from models.safe_load import load_keras, unsafe_parts

    assert encoder.input.shape[1:] == (150, 150, 3) and encoder.input.dtype == "uint8"
    sizes = {name: encoder.get_layer(f"{name}_out").output.shape[1:] for name in
             ("level4_block3", "level3_block1", "level2_block1", "level1_block1", "level0_block1")}
    assert sizes == {"level4_block3": (35, 35, 32), "level3_block1": (17, 17, 64), "level2_block1": (8, 8, 128),
                     "level1_block1": (4, 4, 256), "level0_block1": (2, 2, 256)}
    assert not any(type(layer).__name__ == "Lambda" for layer in encoder.layers)
    path = tmp_path / "dlib_face_resnet.keras"
    encoder.save(path)
    assert unsafe_parts(path) == []
    again = load_keras(path)  # safe_mode=True inside
    x = np.random.default_rng(0).integers(0, 256, (2, 150, 150, 3), dtype=np.uint8)
    np.testing.assert_allclose(np.asarray(again(x)), np.asarray(encoder(x)), atol=1e-6)


def test_a_corrupt_or_truncated_weights_file_is_one_clear_error(tmp_path):
    data = bytearray(package_weights_path().read_bytes())
    model = dlib_face_resnet(weights=None)
    flipped = tmp_path / "flipped.dat"
    data[len(data) // 2] ^= 0xFF
    flipped.write_bytes(bytes(data))
    with pytest.raises(WeightsCorruptError) as err:
        load_dlib_face_weights(model, flipped)
    assert "flipped.dat is corrupt" in str(err.value) and "\n" not in str(err.value)
    truncated = tmp_path / "truncated.dat"
    truncated.write_bytes(bytes(data[: len(data) // 3]))
    with pytest.raises(WeightsCorruptError, match="truncated.dat: not a readable dlib network"):
        load_dlib_face_weights(model, truncated, verify=False)


def test_converted_weights_are_cached_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVFORGE_CACHE", str(tmp_path))
    first = dlib_face_resnet(weights="dlib")
    cached = list(tmp_path.glob("*.weights.h5"))
    assert [p.name for p in cached] == [f"dlib_face_resnet_{WEIGHTS_SHA256[:16]}.weights.h5"]
    second = dlib_face_resnet(weights="dlib")  # loads the cache, not the .dat
    for a, b in zip(first.weights, second.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
