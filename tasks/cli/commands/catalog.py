"""``convforge recipes`` and ``convforge datasets``: what can be run here."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("recipes", help="list the bundled recipes", description="List the bundled recipes (tasks/recipes/*.yaml).")
    p.set_defaults(func=list_recipes, needs_tensorflow=False)
    p = sub.add_parser("datasets", help="list the dataset catalog and what is available offline",
                       description="List the built-in datasets and whether each loads without network here. "
                                   "Any folder (folder:PATH, one subfolder per class) or CSV manifest (csv:PATH) works too; "
                                   "detection reads scenes:NAME, voc:DIR, coco:FILE.json and yolo:DIR. Also lists the "
                                   "augmentation names a recipe's data.augment takes.")
    p.set_defaults(func=list_datasets, needs_tensorflow=False)


def list_recipes(args) -> int:
    from tasks.core.recipe import list_recipes as rows

    items = rows()
    width = max(len(n) for n, _, _ in items)
    for name, task, description in items:
        print(f"{name:<{width}}  {task:<15} {description}")
    return 0


def list_datasets(args) -> int:
    from pipelines.augment_policy import AUGMENTATIONS
    from pipelines.catalog import DATASET_FORMS, describe

    for name, description, offline in describe():
        print(f"{name:<15} {'offline' if offline else 'download':<14} {description}")
    for form, task, description in DATASET_FORMS:
        print(f"{form:<15} {task:<14} {description}")
    print(f"\ndata.augment takes: {', '.join(AUGMENTATIONS)}  (options: see pipelines/augment_policy.py)")
    return 0
