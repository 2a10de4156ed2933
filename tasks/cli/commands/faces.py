"""``convforge faces ...``: enrol, verify, identify, remove, list, reencode, landmarks, export, crop.

Photos go through MTCNN detection and alignment, an encoder
(``serving.face_encoder``) and the SQLite gallery (``serving.gallery``,
``faces.db`` in the working folder by default). With no ``--model`` the
encoder is dlib's pretrained face ResNet (``models.dlib_face_resnet``) on
dlib's 150x150 chips (``tasks.workflows.face_alignment``): Euclidean distance,
threshold 0.6. ``--model`` takes an exported encoder instead (a trained
``faces`` recipe, or ``convforge faces export``). The gallery remembers the
encoder it was built with and refuses another one.

    convforge faces enrol ada ada1.jpg ada2.jpg     # one face per photo
    convforge faces identify group.jpg            # every face: a name or "not recognised", with its distance
    convforge faces verify door.jpg --as ada      # exit code 0 if it is ada, 1 if not
    convforge faces remove ada
    convforge faces reencode --model exports/faces_v2
    convforge faces landmarks group.jpg -o out.png  # the 68 points of every face, drawn
    convforge faces export                        # dlib's encoder as a TF Serving export
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DEFAULT_GALLERY = os.environ.get("CONVFORGE_FACES_DB", "faces.db")
CROP_SIZE = 112  # crops are stored at the alignment template's size; the encoder resizes them


def add_parser(sub) -> None:
    p = sub.add_parser("faces", help="face verification and recognition against an enrolled gallery",
                       description="Enrol people from photos, then verify or identify faces in new photos "
                                   "without retraining. Faces are found by MTCNN; with no --model they are encoded by dlib's pretrained "
                                   "face ResNet (Euclidean distance, threshold 0.6).")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    def action(name, help_text, func, photos=True):
        a = actions.add_parser(name, help=help_text, description=help_text)
        a.add_argument("--gallery", default=DEFAULT_GALLERY, help=f"SQLite gallery file (default {DEFAULT_GALLERY})")
        if photos:
            a.add_argument("--model", help="encoder: 'dlib' (dlib's pretrained face ResNet), a dlib .dat file, or an "
                                           "exported encoder (<dir>/<name> or <dir>/<name>/<version>); "
                                           "default: the one the gallery was built with, else dlib")
            a.add_argument("--min-confidence", type=float, default=0.9, help="MTCNN face confidence (default 0.9)")
        a.set_defaults(func=_damaged_gallery_is_one_line(func))
        return a

    a = action("enrol", "add a person from one or more photos (one face each)", enrol)
    a.add_argument("name")
    a.add_argument("images", nargs="+")
    a = action("verify", "is the face in IMAGE the enrolled person NAME? (exit code 0 yes, 1 no)", verify)
    a.add_argument("image")
    a.add_argument("--as", dest="name", required=True, help="the enrolled name to check against")
    a.add_argument("--threshold", type=float, help="distance threshold (default: the encoder's; dlib's: 0.6 Euclidean)")
    a = action("identify", "name every face in the photos, or say 'not recognised'", identify)
    a.add_argument("images", nargs="+")
    a.add_argument("--threshold", type=float, help="distance threshold (default: the encoder's; dlib's: 0.6 Euclidean)")
    a.add_argument("--index", choices=["numpy", "faiss"], default="numpy", help="search engine (same answers)")
    a = action("remove", "remove a person and their encodings", remove, photos=False)
    a.add_argument("name")
    action("list", "enrolled persons and their number of encodings", list_persons, photos=False)
    a = action("reencode", "rebuild every encoding with another encoder (from the stored crops)", reencode, photos=False)
    a.add_argument("--model", required=True, help="the new encoder: 'dlib', a dlib .dat file or an export")
    help_text = "draw the 68 face landmarks (face-api's CNN, or dlib's predictor) of every face in a photo"
    a = actions.add_parser("landmarks", help=help_text, description=help_text)
    a.add_argument("image")
    a.add_argument("-o", "--output", required=True, help="image to write (PNG or JPEG)")
    a.add_argument("--method", choices=["cnn", "dlib"], default="cnn",
                   help="cnn: face-api's landmark CNN (default); dlib: dlib's regression-tree predictor")
    a.add_argument("--min-confidence", type=float, default=0.9, help="MTCNN face confidence (default 0.9)")
    a.set_defaults(func=landmarks)
    help_text = "write dlib's pretrained face encoder in the TF Serving layout (input: aligned 150x150 uint8 chips)"
    a = actions.add_parser("export", help=help_text, description=help_text)
    a.add_argument("--export-dir", default="exports", help="root folder (default exports)")
    a.add_argument("--name", default="dlib_face_resnet", help="model name (default dlib_face_resnet)")
    a.set_defaults(func=export_encoder)
    a = actions.add_parser("crop", help="turn an identity folder of photos into aligned face crops (for training)",
                           description="SRC/<identity>/<photo> -> OUT/<identity>/<photo>.png, one aligned crop of "
                                       "the most confident face; photos without a face are skipped and counted.")
    a.add_argument("src")
    a.add_argument("out")
    a.add_argument("--size", type=int, default=CROP_SIZE)
    a.add_argument("--alignment", choices=["arcface_112", "dlib_chip_150"], default="arcface_112",
                   help="arcface_112: MTCNN points on the ArcFace template (--size px); dlib_chip_150: dlib's 150x150 chips "
                        "(for the dlib_face_resnet backbone, recipe faces_identities)")
    a.add_argument("--min-confidence", type=float, default=0.9)
    a.set_defaults(func=crop_folder)


# -- shared steps -----------------------------------------------------------------
def _gallery(args, index: str = "numpy"):
    import sqlite3

    from serving.gallery import Gallery, GalleryDamaged
    from tasks.core.errors import UserError

    try:
        return Gallery(args.gallery, index=index)
    except GalleryDamaged as err:
        raise UserError(str(err)) from None
    except (sqlite3.Error, OSError) as err:
        raise UserError(f"gallery {args.gallery} cannot be opened ({err}); give a writable SQLite file with --gallery") from None


def _encoder(args, gallery):
    from serving.face_encoder import DLIB, open_encoder
    from tasks.core.errors import UserError

    model = getattr(args, "model", None) or gallery.meta("model_path") or DLIB
    try:
        return open_encoder(model)
    except FileNotFoundError as err:
        raise UserError(f"--model {model}: {err}") from None
    except OSError as err:  # dlib's weights missing or corrupt (checksum)
        raise UserError(str(err)) from None


def _crops(path: str, min_confidence: float, alignment: str = "arcface_112"):
    """(aligned crops, faces) of an image file: dlib chips [F, 150, 150, 3] or ArcFace crops [F, 112, 112, 3].

    UserError on a bad file or no face."""
    from pipelines.face_crops import face_crops, load_rgb
    from serving.face_encoder import DLIB_CHIP_150
    from tasks.core.errors import UserError
    from tasks.workflows.face_alignment import dlib_aligned_faces

    try:
        if alignment == DLIB_CHIP_150:
            return dlib_aligned_faces(load_rgb(path), min_confidence, name=path)
        return face_crops(load_rgb(path), CROP_SIZE, min_confidence, name=path)
    except ValueError as err:
        raise UserError(str(err)) from None


def _png(crop) -> bytes:
    import cv2

    return cv2.imencode(".png", crop[..., ::-1])[1].tobytes()


def _from_png(data: bytes):
    import cv2
    import numpy as np

    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]


def _check(gallery, encoder):
    from serving.gallery import EncoderMismatch
    from tasks.core.errors import UserError

    try:
        gallery.check_encoder(encoder.version)
    except EncoderMismatch as err:
        raise UserError(str(err)) from None


# -- actions ----------------------------------------------------------------------
def enrol(args) -> int:
    import numpy as np

    from pipelines.face_crops import file_sha256
    from serving.gallery import check_name, display_name
    from tasks.core.errors import UserError, quote

    try:
        check_name(args.name)
    except ValueError as err:
        raise UserError(f"cannot enrol {quote(args.name)}: {err}") from None
    gallery = _gallery(args)
    encoder = _encoder(args, gallery)
    _check(gallery, encoder)
    crops = []
    for path in args.images:  # every photo is checked before anything is written
        found, faces = _crops(path, args.min_confidence, encoder.alignment)
        if len(faces) > 1:
            raise UserError(f"{path} shows {len(faces)} faces; enrol {quote(args.name)} from photos of them alone (one face each)")
        crops.append(found[0])
    hashes = [file_sha256(p) for p in args.images]
    for path, h in zip(args.images, hashes, strict=True):  # the same photo under two names is allowed, not silent
        others = [n for n in gallery.owners([h]).get(h, []) if n != args.name]
        if others:
            print(f"warning: {path} is already enrolled as {', '.join(map(display_name, others))}", file=sys.stderr)
    embeddings = encoder.encode(np.stack(crops))
    try:
        added = gallery.enrol(args.name, embeddings, hashes, encoder.version, crops=[_png(c) for c in crops],
                              sources=[str(Path(p).resolve()) for p in args.images], distance=encoder.distance)
    except ValueError as err:
        raise UserError(f"cannot enrol {quote(args.name)}: {err}") from None
    if gallery.meta("model_path") != encoder.source:
        gallery.set_meta("model_path", encoder.source)
    total = dict(gallery.persons())[args.name]
    print(f"enrolled {args.name}: {added} new encoding(s), {total} in all (encoder {encoder.version})")
    return 0


def verify(args) -> int:
    from tasks.core.errors import UserError

    gallery = _gallery(args)
    encoder = _encoder(args, gallery)
    _check(gallery, encoder)
    crops, _ = _crops(args.image, args.min_confidence, encoder.alignment)
    threshold = encoder.threshold if args.threshold is None else args.threshold
    try:
        match = gallery.verify(encoder.encode(crops[:1])[0], args.name, threshold, encoder.version)
    except KeyError:
        raise UserError(f"{args.name!r} is not enrolled in {args.gallery}; see `convforge faces list`") from None
    verdict = "is" if match.name else "is NOT"
    print(f"{args.image}: {verdict} {args.name} (distance {match.distance:.3f}, threshold {threshold:.3f})")
    return 0 if match.name else 1


def identify(args) -> int:
    import numpy as np

    from serving.gallery import display_name
    from tasks.core.errors import UserError

    gallery = _gallery(args, args.index)
    encoder = _encoder(args, gallery)
    _check(gallery, encoder)
    threshold = encoder.threshold if args.threshold is None else args.threshold
    found, failed = [], 0
    for path in args.images:
        try:
            crops, faces = _crops(path, args.min_confidence, encoder.alignment)
        except UserError as err:  # one bad photo does not stop the others
            print(f"error: {err}", file=sys.stderr)
            failed += 1
            continue
        found.extend((path, i, face, crop) for i, (face, crop) in enumerate(zip(faces, crops, strict=True), start=1))
    if found:  # every face of every photo in one encoder call and one gallery scan
        matches = gallery.identify(encoder.encode(np.stack([c for *_, c in found])), threshold, encoder.version)
        for (path, i, face, _), match in zip(found, matches, strict=True):
            who = display_name(match.name)
            print(f"{path} face {i} at {list(face.box)}: {who} (distance {match.distance:.3f}, threshold {threshold:.3f})")
    return 2 if failed else 0


def remove(args) -> int:
    from tasks.core.errors import UserError

    gallery = _gallery(args)
    try:
        n = gallery.remove(args.name)
    except KeyError:
        raise UserError(f"{args.name!r} is not enrolled in {args.gallery}; see `convforge faces list`") from None
    print(f"removed {args.name} ({n} encoding(s))")
    return 0


def list_persons(args) -> int:
    from serving.gallery import display_name

    gallery = _gallery(args)
    persons = gallery.persons()
    print(f"{len(persons)} person(s) in {args.gallery}, encoder {gallery.encoder_version or '-'}")
    for name, count in persons:
        print(f"  {display_name(name)}: {count} encoding(s)")
    return 0


def reencode(args) -> int:
    import numpy as np

    from tasks.core.errors import UserError

    gallery = _gallery(args)
    encoder = _encoder(args, gallery)
    try:
        n = gallery.reencode(lambda pngs: encoder.encode(np.stack([_from_png(b) for b in pngs])), encoder.version,
                             distance=encoder.distance)
    except ValueError as err:
        raise UserError(f"cannot reencode {args.gallery}: {err}") from None
    gallery.set_meta("model_path", encoder.source)
    print(f"re-encoded {n} encoding(s) with encoder {encoder.version}")
    return 0


def landmarks(args) -> int:
    import cv2

    from pipelines.face_crops import load_rgb
    from tasks.core.errors import UserError
    from tasks.workflows.face_landmarks import draw_landmarks, face_landmarks

    out = Path(args.output)
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise UserError(f"-o {args.output}: give a .png or .jpg file name")
    try:
        image = load_rgb(args.image)
        faces, points = face_landmarks(image, args.min_confidence, name=args.image, method=args.method)
    except (ValueError, OSError) as err:
        raise UserError(str(err)) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), draw_landmarks(image, faces, points)[..., ::-1]):
        raise UserError(f"-o {args.output} cannot be written; give a writable path")
    print(f"{args.image}: {len(faces)} face(s), 68 landmarks each ({args.method}) -> {out}")
    return 0


def export_encoder(args) -> int:
    from models.errors import WeightsUnavailableError
    from tasks.core.errors import UserError
    from tasks.workflows.pretrained_faces import export_dlib_encoder

    try:
        path = export_dlib_encoder(args.export_dir, args.name)
    except WeightsUnavailableError as err:
        raise UserError(str(err)) from None
    print(f"exported dlib's face encoder to {path} (signature serving_default: uint8 150x150 chips -> embedding [N, 128]; "
          "serving_bytes: encoded chips; threshold 0.6 Euclidean)")
    return 0


def _damaged_gallery_is_one_line(func):
    """Run an action; a gallery found damaged mid-way (a corrupted page) is one `error:` line, not a traceback."""

    def run(args):
        from serving.gallery import GalleryDamaged
        from tasks.core.errors import UserError

        try:
            return func(args)
        except GalleryDamaged as err:
            raise UserError(str(err)) from None

    return run


def crop_folder(args) -> int:
    from collections import Counter

    import cv2

    from pipelines.face_crops import face_crops, load_rgb
    from pipelines.sources import image_folder
    from tasks.core.errors import UserError
    from tasks.workflows.face_alignment import dlib_aligned_faces

    try:
        files = image_folder(args.src)
    except (FileNotFoundError, ValueError) as err:
        raise UserError(str(err)) from None
    out, skipped = Path(args.out), Counter(files.skipped)
    written = 0
    for i, (path, label) in enumerate(zip(files.paths, files.labels, strict=True), start=1):
        try:
            if args.alignment == "dlib_chip_150":
                crops, _ = dlib_aligned_faces(load_rgb(path), args.min_confidence, name=path)
            else:
                crops, _ = face_crops(load_rgb(path), args.size, args.min_confidence, name=path)
        except ValueError:
            skipped["no_face_or_unreadable"] += 1
            continue
        target = out / files.class_names[label] / (Path(path).stem + ".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(target), crops[0][..., ::-1])
        written += 1
        if i % 100 == 0:
            print(f"{i}/{len(files.paths)} photos, {written} crops")
    print(f"wrote {written} crop(s) under {out}; skipped {dict(skipped) or 'none'}")
    return 0
