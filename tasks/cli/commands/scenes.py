"""``convforge scenes OUT --format voc|coco|yolo``: write a labelled detection dataset of generated scenes."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("scenes", help="write generated detection scenes (real objects on real photos) as VOC/COCO/YOLO",
                       description="Paste real catalog objects (Fashion-MNIST items or digits) onto real photos with "
                                   "exact boxes, classes and landmarks, and write them in a standard layout that "
                                   "`data.dataset: voc:|coco:|yolo:` reads back.")
    p.add_argument("out", help="folder to write")
    p.add_argument("--format", choices=["voc", "coco", "yolo"], default="yolo")
    p.add_argument("--objects", default="fashion_mnist", help="catalog dataset the objects come from (default fashion_mnist)")
    p.add_argument("--split", choices=["train", "test"], default="test",
                   help="which catalog split the objects come from (default test: held out from training)")
    p.add_argument("--count", type=int, default=100, help="how many scenes (default 100)")
    p.add_argument("--size", type=int, nargs=2, default=[128, 128], metavar=("H", "W"), help="scene size (default 128 128)")
    p.add_argument("--max-objects", type=int, default=4, help="1..N objects per scene (default 4)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args) -> int:
    from pipelines.catalog import load_arrays
    from pipelines.detection_writers import write_coco, write_voc, write_yolo
    from pipelines.scenes import background_photos, make_scenes
    from tasks.core.errors import UserError, clean_message

    if args.count < 1 or args.max_objects < 1 or min(args.size) < 32:
        raise UserError("--count and --max-objects must be >= 1 and --size at least 32 32")
    try:
        data = load_arrays(args.objects)
    except (KeyError, FileNotFoundError, ValueError) as err:
        raise UserError(f"--objects {args.objects!r}: {clean_message(err)}") from None
    x, y = (data.x_train, data.y_train) if args.split == "train" else (data.x_test, data.y_test)
    side = min(args.size)
    scenes = make_scenes(x, y, background_photos(), args.count, image_size=tuple(args.size),
                         objects_per_scene=(1, args.max_objects), object_size=(side * 3 // 16, side * 3 // 8),
                         seed=args.seed, class_names=data.class_names)
    writer = {"voc": write_voc, "coco": write_coco, "yolo": write_yolo}[args.format]
    path = writer(scenes, args.out)
    print(f"wrote {args.count} scenes ({sum(len(b) for b in scenes.boxes)} objects) as {args.format}: {path}")
    return 0
