"""68-point landmarks on real faces: face-api's CNN and the NumPy tree predictor against dlib's own pipeline.

    .venv/bin/python benchmarks/face_landmarks.py

For every face both detectors find on the real photos available offline
(the bundled astronaut and Grace Hopper, face_recognition's four photos,
face-api's six group photos), the
mean distance between our 68 points and those of dlib's whole pipeline (HOG
detector + ``shape_predictor_68_face_landmarks.dat``), over the inter-ocular
distance (goal <= 0.08). The CNN's crop framing (``CNN_SIDE``, ``CNN_SHIFT``)
was chosen on sample1-3, so the faces of the other photos are reported apart.
Also ms per photo (MTCNN included, median) for both methods, in one process.
Needs ``dlib-bin`` (the dev extra) and the npm registry for face-api's files.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from benchmarks.machine import table, write_section  # noqa: E402

GOAL = 0.08
CHOSEN_ON = ("sample1.jpg", "sample2.jpg", "sample3.jpg")


def main() -> None:
    from faces_dlib_reference import dlib_68_points, landmark_errors, real_face_photos

    from pipelines.sample_faces import cache_dir
    from tasks.workflows.face_landmarks import face_landmarks

    photos = real_face_photos(cache_dir() / "photos")
    reference = {name: dlib_68_points(image) for name, image in photos.items()}
    rows = []
    for method, label in (("cnn", "face-api CNN, Keras (default)"), ("dlib", "dlib's trees, NumPy (--method dlib)")):
        face_landmarks(photos["grace_hopper.jpg"], name="warm-up", method=method)
        errors: dict[bool, list[float]] = {True: [], False: []}
        times = []
        for name, image in photos.items():
            start = time.perf_counter()
            _, points = face_landmarks(image, name=name, method=method)
            times.append(time.perf_counter() - start)
            errors[name in CHOSEN_ON] += landmark_errors(points, reference[name])
        every = errors[True] + errors[False]
        rows.append([label, f"{np.mean(every):.3f} ({len(every)} faces)", f"{np.mean(errors[False]):.3f} ({len(errors[False])} faces)",
                     f"{np.median(every):.3f}", f"{np.max(every):.3f}", f"{1000 * np.median(times):.0f}",
                     "met" if np.mean(every) <= GOAL else "NOT met"])
    body = (table(["landmarks", "mean error / inter-ocular", "faces not used to choose the crop",
                   "median", "worst", "ms / photo (median, MTCNN included)", f"goal <= {GOAL}"], rows)
            + f"\n\nReference: dlib's HOG detector (upsample 1) + its 68-point predictor on {len(photos)} photos "
            f"({', '.join(photos)}). The CNN's crop was chosen on {', '.join(CHOSEN_ON)}. The trees are dlib's own "
            "model read in NumPy, so they agree with it closely; the CNN is an independent model.\n")
    write_section("face_landmarks", "Faces: 68-point landmarks against dlib", "python benchmarks/face_landmarks.py", body)
    from benchmarks.readme_blocks import sync_readme

    sync_readme()


if __name__ == "__main__":
    main()
