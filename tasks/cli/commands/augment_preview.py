"""``convforge augment-preview RECIPE -o grid.png``: originals beside augmented versions.

Each row is one training image: the original first, then ``--versions``
augmented draws of the recipe's ``data.augment`` policy (the same code path
training uses). Boxes and keypoints are drawn when the dataset has them
(``scenes:``, ``voc:``, ``coco:``, ``yolo:`` datasets); the grid is drawn by
``tasks.figures.augment_preview``.
"""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser(
        "augment-preview", help="render a recipe's augmentation policy as a grid of images",
        description="Render originals beside augmented versions drawn with the recipe's data.augment policy "
                    "(boxes and keypoints drawn when the dataset has them).",
    )
    p.add_argument("recipe", help="recipe YAML path or bundled recipe name")
    p.add_argument("-o", "--output", default="augment_preview.png", help="PNG to write (default augment_preview.png)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe field, e.g. --set 'data.augment=[mirror, rotate]'")
    p.add_argument("--rows", type=int, default=4, help="how many original images (default 4)")
    p.add_argument("--versions", type=int, default=5, help="augmented versions per image (default 5)")
    p.set_defaults(func=run)


def run(args) -> int:
    from tasks.core.errors import UserError
    from tasks.core.recipe import load_recipe
    from tasks.figures.augment_preview import write_preview

    if args.rows < 1 or args.versions < 1:
        raise UserError("--rows and --versions must be at least 1")
    recipe = load_recipe(args.recipe, args.overrides)
    path = write_preview(recipe, args.output, args.rows, args.versions)
    print(f"wrote {path}")
    return 0
