"""``convforge detect EXPORT IMAGE... -o out.png``: run a detector and draw its boxes.

``--method export`` (default) works with every detection export: YOLO and
Faster R-CNN take only the image; Fast R-CNN exports also take region
proposals (``serving.proposal_export``): this command computes them as the
export's ``assets/proposals.json`` says (selective search on the image
resized to the export's size).

``--method windows`` and ``--method rcnn`` run the notes' first detectors
(``tasks.workflows.region_classifier``) on the images given: sliding windows
naive and convolutional, or selective-search proposals classified one by one.
Their region classifier is read from ``--classifier``, or trained once on
generated scenes and kept there.
"""

from __future__ import annotations

DETECTOR_OUTPUTS = ("detection_boxes", "detection_scores", "detection_classes", "num_detections")


def add_parser(sub) -> None:
    p = sub.add_parser("detect", help="detect objects in images with an exported detector and draw the boxes",
                       description="Send image files through the export's serving_bytes signature (decoding, "
                                   "resizing, box decoding and non-max suppression happen inside the graph), print "
                                   "the detections and draw boxes with class names and scores into one picture.")
    p.add_argument("inputs", nargs="+", metavar="EXPORT|IMAGE",
                   help="--method export: an export folder (<dir>/<name> for its newest version, or "
                        "<dir>/<name>/<version>) then image files; --method windows|rcnn: image files only "
                        "(JPEG, PNG, BMP, GIF)")
    p.add_argument("--method", choices=["export", "windows", "rcnn"], default="export",
                   help="export: a YOLO / Fast / Faster R-CNN export (default); windows: sliding windows, naive "
                        "and convolutional; rcnn: selective-search proposals, each classified")
    p.add_argument("--classifier", default=None,
                   help="windows/rcnn: the region classifier (.keras); trained on generated scenes and written "
                        "here when missing (default exports/region_classifier_<method>.keras)")
    p.add_argument("--threshold", type=float, default=0.6,
                   help="windows/rcnn: discard detections scoring <= this before NMS (default 0.6, the notes' pc)")
    p.add_argument("-o", "--output", default="detections.png",
                   help="picture to write (PNG); several images are laid out side by side (default detections.png)")
    p.add_argument("--min-score", type=float, default=0.0,
                   help="hide detections scoring below this (the export already dropped those <= its own threshold)")
    p.set_defaults(func=run)


def run(args) -> int:
    import cv2
    import numpy as np
    import tensorflow as tf

    from serving.export import read_class_names
    from serving.loader import input_specs
    from serving.proposal_export import read_proposal_spec
    from tasks.cli.commands.predict import load_export_or_fail, read_images
    from tasks.core.errors import UserError
    from tasks.figures.detection_drawing import draw_detections

    if args.method != "export":
        return run_regions(args)
    if len(args.inputs) < 2:
        raise UserError("give an export folder then at least one image (or --method windows|rcnn with images only)")
    args.export, args.images = args.inputs[0], args.inputs[1:]
    images = read_images(args.images)
    path, served = load_export_or_fail(args.export)
    fn = served.signatures["serving_bytes"]
    missing = [k for k in DETECTOR_OUTPUTS if k not in fn.structured_outputs]
    if missing:
        raise UserError(f"export {path} is not a detector (no {', '.join(missing)}); give a detection export")
    names = read_class_names(path)
    spec = read_proposal_spec(path) if "proposals" in input_specs(fn) else None
    if "proposals" in input_specs(fn) and not spec:
        raise UserError(f"export {path} takes proposals but has no assets/proposals.json; re-export it")
    pictures = []
    for file, data in zip(args.images, images, strict=False):
        extra = {"proposals": tf.constant(proposals_for(data, spec)[None])} if spec else {}
        out = {k: v.numpy()[0] for k, v in fn(image_bytes=tf.constant([data]), **extra).items()}
        n = int(out["num_detections"])
        keep = out["detection_scores"][:n] >= args.min_score
        boxes, scores = out["detection_boxes"][:n][keep], out["detection_scores"][:n][keep]
        classes = out["detection_classes"][:n][keep].astype(int)
        rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        pictures.append(draw_detections(rgb, boxes, classes, scores, names))
        print_detections(file, rgb.shape, boxes, classes, scores, names)
    return write_pictures(args.output, pictures)


def write_pictures(output: str, pictures: list) -> int:
    """Write the drawn pictures side by side as one PNG and say where."""
    from tasks.core.errors import UserError
    from tasks.figures.detection_drawing import tile, write_png

    picture = pictures[0] if len(pictures) == 1 else tile(pictures, columns=min(4, len(pictures)))
    try:
        written = write_png(output, picture)
    except OSError as err:
        raise UserError(f"output {output}: {err}; give a writable .png path") from None
    print(f"wrote {written}")
    return 0


def print_detections(file: str, shape: tuple, boxes, classes, scores, names: list[str]) -> None:
    """One line per detection, in pixels."""
    h, w = shape[:2]
    print(f"{file}: {len(boxes)} detection(s)")
    for (y0, x0, y1, x1), c, s in zip(boxes, classes, scores, strict=False):
        name = names[c] if c < len(names) else str(c)
        print(f"  {name:<14} {s:.3f}  x {x0 * w:6.1f}..{x1 * w:6.1f}  y {y0 * h:6.1f}..{y1 * h:6.1f}")


def run_regions(args) -> int:
    """``--method windows|rcnn``: the region classifier on every image, drawn."""
    from pathlib import Path

    import cv2
    import numpy as np

    from tasks.cli.commands.predict import read_images
    from tasks.core.errors import UserError
    from tasks.figures.detection_drawing import draw_detections
    from tasks.workflows import region_classifier as rc

    if not 0.0 <= args.threshold < 1.0:
        raise UserError(f"--threshold must be in [0, 1); received {args.threshold}")
    images = read_images(args.inputs)
    path = Path(args.classifier or f"exports/region_classifier_{args.method}.keras")
    if path.is_file():
        classifier, names = rc.load_classifier(path)
    else:
        print(f"training the {args.method} region classifier on generated scenes (once; kept in {path}) ...", flush=True)
        classifier, names = rc.train_region_classifier(args.method)
        rc.save_classifier(classifier, names, path)
    pictures = []
    for file, data in zip(args.inputs, images, strict=False):
        rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        try:
            found = rc.detect_regions(args.method, classifier, rgb, len(names), args.threshold)
        except ValueError as err:
            raise UserError(f"{file}: {err}") from None
        print_detections(file, rgb.shape, found.boxes, found.classes, found.scores, names)
        notes = found.notes
        if args.method == "windows":
            print(f"  {notes['windows']} windows: naive {notes['naive_s'] * 1000:.0f} ms, convolutional "
                  f"{notes['convolutional_s'] * 1000:.0f} ms ({notes['naive_s'] / max(notes['convolutional_s'], 1e-9):.1f}x), "
                  f"largest score difference {notes['max_score_difference']:.1e}")
        else:
            print(f"  {notes['proposals']} proposals classified in {found.seconds * 1000:.0f} ms")
        pictures.append(draw_detections(rgb, found.boxes, found.classes, found.scores, names))
    return write_pictures(args.output, pictures)


def proposals_for(data: bytes, spec: dict):
    """Region proposals of one encoded image as an export's ``proposals.json`` asks: ``[P, 4]`` float32."""
    import tensorflow as tf

    from serving.export import resize_images
    from tasks.core.errors import UserError
    from tasks.problems.two_stage import padded_proposals

    if spec.get("method") != "selective_search":
        raise UserError(f"export asks for {spec.get('method')!r} proposals; this convforge computes selective_search")
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    image = resize_images(image[None], tuple(spec["image_size"]))[0].numpy()
    return padded_proposals(image, int(spec["max_proposals"]))
