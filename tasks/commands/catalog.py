"""``convforge recipes`` and ``convforge datasets``: what can be run here."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("recipes", help="list the bundled recipes", description="List the bundled recipes (tasks/recipes/*.yaml).")
    p.set_defaults(func=list_recipes)
    p = sub.add_parser("datasets", help="list the dataset catalog and what is available offline",
                       description="List the built-in datasets and whether each loads without network here. "
                                   "Any folder (folder:PATH, one subfolder per class) or CSV manifest (csv:PATH) works too.")
    p.set_defaults(func=list_datasets)


def list_recipes(args) -> int:
    from tasks.recipe import list_recipes as rows

    items = rows()
    width = max(len(n) for n, _, _ in items)
    for name, task, description in items:
        print(f"{name:<{width}}  {task:<15} {description}")
    return 0


def list_datasets(args) -> int:
    from pipelines.catalog import describe

    for name, description, offline in describe():
        print(f"{name:<14} {'offline' if offline else 'download':<9} {description}")
    print("folder:PATH    offline   images in PATH/<class>/ (Keras image_dataset_from_directory layout)")
    print("csv:PATH       offline   a manifest with the header path,label (paths relative to the CSV)")
    return 0
