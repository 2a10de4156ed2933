"""Faces: the pretrained encoder against dlib itself, on the same cores and the same real photos.

    .venv/bin/python benchmarks/faces_encoder.py [--repeats 20]

1. Encoder throughput (faces/s) at batch 1 and 32 on dlib's own 150x150 chips
   of the sample photos (``pipelines.sample_faces``): the Keras port (float32,
   and mixed_bfloat16 with the change in descriptors and distances) against
   dlib's ``compute_face_descriptor`` (one chip, and its batch form), in one
   process on the same cores. Goal: >= 2x dlib at batch 32, not slower at 1.
2. Detection + alignment, ms per photo: convforge's path (MTCNN, dlib's
   landmark predictor in NumPy, dlib's chip) against dlib's (HOG detector
   upsampled once, shape predictor, ``get_face_chip``).
3. Impostors: faces in one group photo are different people; the
   false-accept rate at 0.6 over every pair of faces sharing a face-api demo
   photo, for both pipelines; genuine pairs: the distances between three
   different photos of one person (face_recognition's obama, obama2,
   obama3), for both pipelines; and the distance between the two pipelines'
   descriptors of the same face.

Needs ``dlib-bin`` (the dev extra) and the photos ``make data`` fetches
(``pipelines.sample_faces``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from benchmarks.machine import table, write_section  # noqa: E402

THRESHOLD = 0.6


def _rate(fn, items: int, repeats: int) -> float:
    fn()  # warm-up (tracing, caches)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return items * repeats / (time.perf_counter() - start)


def throughput(chips: np.ndarray, repeats: int) -> tuple[list[list], str]:
    import keras
    import tensorflow as tf
    from faces_dlib_reference import dlib_models

    from models.dlib_face_resnet import dlib_face_resnet

    encoder = dlib_models()[2]
    batch = np.resize(chips, (32, *chips.shape[1:]))
    one = chips[:1]
    f32 = dlib_face_resnet()
    fn32 = tf.function(lambda x: f32(x, training=False), reduce_retracing=True)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        bf16 = dlib_face_resnet()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    fn16 = tf.function(lambda x: bf16(x, training=False), reduce_retracing=True)
    dlib_one = _rate(lambda: encoder.compute_face_descriptor(one[0]), 1, repeats)
    dlib_batch = _rate(lambda: encoder.compute_face_descriptor(list(batch)), 32, max(2, repeats // 8))
    k1, k32 = _rate(lambda: fn32(one), 1, repeats), _rate(lambda: fn32(batch), 32, max(2, repeats // 8))
    b1, b32 = _rate(lambda: fn16(one), 1, repeats), _rate(lambda: fn16(batch), 32, max(2, repeats // 8))
    e32, e16 = np.asarray(fn32(chips)), np.asarray(fn16(chips), np.float32)
    iu = np.triu_indices(len(chips), 1)
    d32 = np.linalg.norm(e32[:, None] - e32[None], axis=-1)[iu]
    d16 = np.linalg.norm(e16[:, None] - e16[None], axis=-1)[iu]
    rows = [
        ["dlib compute_face_descriptor", f"{dlib_one:.1f}", f"{dlib_batch:.1f}", "1.00x / 1.00x"],
        ["Keras port, float32", f"{k1:.1f}", f"{k32:.1f}", f"{k1 / dlib_one:.2f}x / {k32 / dlib_batch:.2f}x"],
        ["Keras port, mixed_bfloat16", f"{b1:.1f}", f"{b32:.1f}", f"{b1 / dlib_one:.2f}x / {b32 / dlib_batch:.2f}x"],
    ]
    note = (f"mixed_bfloat16 vs float32 on {len(chips)} chips: max |descriptor change| {np.abs(e16 - e32).max():.4f}, "
            f"max |distance change| over {len(d32)} pairs {np.abs(d16 - d32).max():.4f}, decisions at {THRESHOLD} changed: "
            f"{int(np.sum((d16 <= THRESHOLD) != (d32 <= THRESHOLD)))}. Goal >= 2x dlib at batch 32: "
            f"{'met' if k32 >= 2 * dlib_batch else 'NOT met'} ({k32 / dlib_batch:.2f}x float32); not slower at batch 1: "
            f"{'met' if k1 >= dlib_one else 'NOT met'} ({k1 / dlib_one:.2f}x).")
    return rows, note


def pipelines(photos: dict[str, np.ndarray], group: set[str], person: set[str]) -> tuple[list[list], str]:
    import dlib
    from faces_dlib_reference import dlib_models

    from serving.face_encoder import DlibFaceEncoder
    from tasks.workflows.face_alignment import dlib_aligned_faces

    detector, predictor, encoder = dlib_models()
    ours_encoder = DlibFaceEncoder()
    dlib_aligned_faces(next(iter(photos.values())))  # load MTCNN and the predictor before timing
    ours_ms, dlib_ms, same_face, far = [], [], [], {"convforge": [0, 0], "dlib": [0, 0]}
    one_person = {"convforge": [], "dlib": []}  # the face of each photo of the same person
    for name, image in photos.items():
        t = time.perf_counter()
        chips, faces = dlib_aligned_faces(image, name=name)
        ours_ms.append(1000 * (time.perf_counter() - t))
        t = time.perf_counter()
        shapes = [predictor(image, r) for r in detector(image, 1)]
        theirs = [np.asarray(dlib.get_face_chip(image, s, size=150, padding=0.25)) for s in shapes]
        dlib_ms.append(1000 * (time.perf_counter() - t))
        e_ours = ours_encoder.encode(chips)
        e_dlib = np.array([np.asarray(encoder.compute_face_descriptor(c)) for c in theirs])
        for s, e in zip(shapes, e_dlib, strict=True):
            nose, eyes = np.array([s.part(4).x, s.part(4).y]), np.hypot(s.part(0).x - s.part(2).x, s.part(0).y - s.part(2).y)
            gaps = [np.linalg.norm(f.landmarks[2] - nose) for f in faces]
            if min(gaps) <= 0.5 * eyes:
                same_face.append(float(np.linalg.norm(e_ours[int(np.argmin(gaps))] - e)))
        if name in person:
            one_person["convforge"].append(e_ours[0])
            one_person["dlib"].append(e_dlib[0])
        if name in group:
            for key, e in (("convforge", e_ours), ("dlib", e_dlib)):
                d = np.linalg.norm(e[:, None] - e[None], axis=-1)[np.triu_indices(len(e), 1)]
                far[key][0] += int(np.sum(d <= THRESHOLD))
                far[key][1] += len(d)
    genuine = {}
    for key, e in one_person.items():
        d = np.linalg.norm(np.array(e)[:, None] - np.array(e)[None], axis=-1)[np.triu_indices(len(e), 1)]
        genuine[key] = f"{', '.join(f'{v:.3f}' for v in d)}; {int(np.sum(d > THRESHOLD))}/{len(d)} rejected"
    rows = [["convforge: MTCNN + dlib landmarks (NumPy) + chip", f"{np.median(ours_ms):.0f}", f"{np.sum(ours_ms) / 1000:.1f}",
             f"{far['convforge'][0]}/{far['convforge'][1]} = {far['convforge'][0] / max(1, far['convforge'][1]):.3f}", genuine["convforge"]],
            ["dlib: HOG (upsample 1) + shape predictor + get_face_chip", f"{np.median(dlib_ms):.0f}", f"{np.sum(dlib_ms) / 1000:.1f}",
             f"{far['dlib'][0]}/{far['dlib'][1]} = {far['dlib'][0] / max(1, far['dlib'][1]):.3f}", genuine["dlib"]]]
    note = (f"Same face through both pipelines ({len(same_face)} faces found by both): descriptor distance median "
            f"{np.median(same_face):.3f}, max {np.max(same_face):.3f} (goal: median <= 0.10).")
    return rows, note


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=20, help="timed calls at batch 1 (batch 32: repeats / 8, at least 2)")
    args = ap.parse_args()
    from faces_dlib_reference import dlib_faces

    from pipelines.face_crops import load_rgb
    from pipelines.sample_faces import bundled_photos, face_api_photos, person_photos

    group = face_api_photos()
    person = [p for name, p in person_photos().items() if name.startswith("obama")]
    photos = {p.name: load_rgb(p) for p in [*bundled_photos().values(), *person_photos().values(), *group]}
    chips = np.stack([f.chip for image in photos.values() for f in dlib_faces(image)])
    speed_rows, speed_note = throughput(chips, args.repeats)
    pipe_rows, pipe_note = pipelines(photos, {p.name for p in group}, {p.name for p in person})
    body = (
        f"### Encoder throughput, faces/s ({len(chips)} dlib chips of the sample photos, tiled to 32)\n\n"
        + table(["encoder", "batch 1", "batch 32", "vs dlib (1 / 32)"], speed_rows)
        + f"\n\n{speed_note} dlib is the prebuilt dlib-bin 20.0.1.post1 wheel, as pip installs it.\n\n"
        f"### Detection + alignment and impostors ({len(photos)} photos: {', '.join(photos)})\n\n"
        + table(["pipeline", "ms / photo (median)", "s in all", f"false accepts at {THRESHOLD}, pairs within a group photo",
                 f"same person, 3 photos of Barack Obama: pair distances; rejected at {THRESHOLD}"], pipe_rows)
        + f"\n\n{pipe_note} Both run in one process on the same cores (TensorFlow and dlib each use their own threads); "
        "the machine is shared, so compare the ratios.\n"
    )
    write_section("faces_encoder", "Faces: the pretrained encoder and alignment against dlib", "python benchmarks/faces_encoder.py", body)


if __name__ == "__main__":
    main()
