"""``convforge info MODEL --input-shape H,W,C [--classes K]``: per-layer shapes, parameters, multiplies."""

from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser(
        "info", help="per-layer output shape, parameters and multiplies of a model (conv arithmetic)",
        description="Build a registered model (or load a saved .keras file) and print one line per layer: output "
                    "shape and parameters from the conv formulas floor((n+2p-f)/s+1) and f*f*nc_prev*nc+nc, "
                    "checked against the built layers, and the multiplies (nh*nw*nc)*(f*f*nc_prev). The totals "
                    "equal Keras' count_params(). --one-by-one-example prints the notes' 1x1 convolution cost "
                    "example instead (28x28x192 -> 5x5 conv to 32 channels, with and without a 1x1 to 16 first).")
    p.add_argument("model", nargs="?", help="a registered model name (e.g. vgg16, resnet50) or a .keras file")
    p.add_argument("--input-shape", help="comma-separated input shape without the batch axis, e.g. 224,224,3 "
                                         "(28,28 for 1D nets, 8,28,28,1 for 3D nets); not needed for a .keras file")
    p.add_argument("--classes", type=int, default=10, help="number of classes (default 10)")
    p.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE",
                   help="a builder option, e.g. --opt small=true --opt width=0.5 (repeatable)")
    p.add_argument("--allow-unsafe", action="store_true",
                   help="load a .keras file even if it holds Lambda layers or custom code (only for files you trust)")
    p.add_argument("--one-by-one-example", action="store_true",
                   help="print the notes' 1x1 convolution cost example (about 120M vs 12.4M multiplies)")
    p.set_defaults(func=run)


def parse_shape(text: str | None) -> tuple[int, ...]:
    """``"224,224,3"`` -> ``(224, 224, 3)``; a bad shape is a UserError."""
    from tasks.core.errors import UserError

    try:
        shape = tuple(int(v) for v in (text or "").replace("x", ",").split(",") if v.strip())
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise UserError(f"--input-shape {text!r} must be positive integers separated by commas, e.g. 224,224,3")
    return shape


def load_or_build(args):
    """The Keras model named by ``args.model`` (registered name or .keras file)."""
    import models
    from tasks.core.errors import UserError
    from tasks.core.recipe import parse_overrides

    if args.model.endswith(".keras") or Path(args.model).is_file():
        from models.safe_load import UnsafeModelError, load_keras

        if not Path(args.model).is_file():
            raise UserError(f"model file {args.model} does not exist")
        try:
            return load_keras(args.model, allow_unsafe=getattr(args, "allow_unsafe", False) or None)
        except UnsafeModelError as err:
            raise UserError(str(err)) from None
        except Exception as err:  # noqa: BLE001 - any unreadable file is the user's input problem
            raise UserError(f"model file {args.model} cannot be loaded ({type(err).__name__}); give a .keras file") from None
    if args.model not in models.names():
        raise UserError(f"unknown model {args.model!r}; choose one of: {', '.join(models.names())} or a .keras file")
    if args.input_shape is None:
        raise UserError(f"--input-shape is needed to build {args.model!r}, e.g. --input-shape 224,224,3")
    try:
        return models.build(args.model, parse_shape(args.input_shape), args.classes, **parse_overrides(args.opt))
    except (TypeError, ValueError) as err:
        raise UserError(f"cannot build {args.model!r} for input shape {args.input_shape}: {err}") from None


def print_table(model) -> None:
    from models.conv_arithmetic import format_table, layer_table

    rows = layer_table(model)
    print(f"model: {model.name}   input: {tuple(model.inputs[0].shape[1:])}")
    print(format_table(rows))
    total, keras_total = sum(r.params for r in rows), model.count_params()
    assert total == keras_total, f"table total {total} != count_params {keras_total}"
    print(f"parameters: {total:,} (Keras count_params: {keras_total:,})")
    print(f"multiplies per example: {sum(r.multiplies for r in rows):,}")


def print_one_by_one_example() -> None:
    from models.one_by_one import bottleneck_conv_model, cost_example, direct_conv_model

    cost = cost_example()
    for model in (direct_conv_model(), bottleneck_conv_model()):
        print_table(model)
        print()
    print(f"direct 5x5 conv:           {cost['direct']:>12,} multiplies")
    print(f"1x1 to 16, then 5x5 conv:  {cost['bottleneck']:>12,} multiplies")
    print(f"ratio: {cost['ratio']:.2f}x fewer with the 1x1 bottleneck")


def run(args) -> int:
    from tasks.core.errors import UserError

    if args.one_by_one_example:
        print_one_by_one_example()
        return 0
    if not args.model:
        raise UserError("give a MODEL name or .keras file (see `convforge info --help`), or --one-by-one-example")
    print_table(load_or_build(args))
    return 0
