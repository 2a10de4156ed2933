"""Checks the detector end-to-end tests share: an export's detections equal the Keras model's, and
``convforge detect`` draws them and refuses a non-image in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def assert_export_equals_keras(out: dict, expected: list[tuple]) -> None:
    """``out``: an export's ``detection_*`` / ``num_detections`` arrays; ``expected``: per image the Keras model's
    ``(boxes, scores, classes)`` after the same decoding and NMS."""
    for i, (boxes, scores, classes) in enumerate(expected):
        n = int(out["num_detections"][i])
        assert n == len(boxes)
        np.testing.assert_allclose(out["detection_boxes"][i, :n], boxes, atol=1e-4)
        np.testing.assert_allclose(out["detection_scores"][i, :n], scores, atol=1e-4)
        np.testing.assert_array_equal(out["detection_classes"][i, :n].astype(int), classes)


def assert_detect_command_draws(export_path: Path, image: np.ndarray, workdir: Path) -> None:
    """``convforge detect EXPORT scene.png`` draws a picture; a file that is not an image is exit code 2."""
    import cv2

    from tasks.cli.main import main

    path = workdir / "scene.png"
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    assert main(["detect", str(export_path), str(path), "-o", str(workdir / "out.png")]) == 0
    drawn = cv2.imread(str(workdir / "out.png"))
    assert drawn is not None and drawn.shape[0] >= 384
    (workdir / "bad.png").write_text("not an image")
    assert main(["detect", str(export_path), str(workdir / "bad.png")]) == 2
