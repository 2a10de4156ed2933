"""``convforge recipe show RECIPE [--set key=value]...``: the resolved recipe, every task default filled in."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("recipe", help="show a recipe resolved: every default of its task, with your --set overrides",
                       description="Work with one recipe without running it.")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    show = actions.add_parser("show", help="print the resolved recipe as YAML",
                              description="Print the recipe as `convforge train` would run it (and MLflow would log "
                                          "it): the YAML merged with every default of its task and the --set "
                                          "overrides, validated (values a task settles at run time, e.g. transfer's image size "
                                          "for a folder, show as null). Unknown keys name the closest known one.")
    show.add_argument("recipe", help="a recipe YAML path or the name of a bundled recipe (see `convforge recipes`)")
    show.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                      help="override a recipe field, e.g. --set train.epochs=3 (repeatable)")
    show.set_defaults(func=show_recipe, needs_tensorflow=False)


def show_recipe(args) -> int:
    """Print the resolved recipe as YAML, after a comment naming where it came from.

    Example:
        $ convforge recipe show fashion_mnist_lenet5 --set train.epochs=2
        # fashion_mnist_lenet5 resolved for task classification, with --set train.epochs=2
        task: classification
        ...
    """
    import yaml

    from tasks.core.recipe import load_recipe

    recipe = load_recipe(args.recipe, args.overrides, check_services=False)
    given = f", with --set {' --set '.join(args.overrides)}" if args.overrides else ""
    print(f"# {args.recipe} resolved for task {recipe['task']}{given}")
    print(yaml.safe_dump(recipe, sort_keys=False), end="")
    return 0
