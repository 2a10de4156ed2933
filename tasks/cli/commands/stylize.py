"""Fast style transfer: ``convforge stylize EXPORT_DIR IMAGE -o out.png`` and
``convforge train-stylizer STYLE`` (train, export and compare in one MLflow run)."""

from __future__ import annotations

TRAIN_DESCRIPTION = ("Train a Johnson et al. (2016) transformation network for STYLE on random crops of real photos "
                     "with the perceptual costs of `convforge style`, export it for TF Serving, and compare its time "
                     "per image with the optimisation method (MLflow experiment fast_style).")


def add_parser(sub) -> None:
    p = sub.add_parser("stylize", help="stylise an image with an exported fast stylizer",
                       description="Run an exported feed-forward stylizer (from `convforge train-stylizer`) on IMAGE. "
                                   "EXPORT_DIR is <root>/<name> (newest version) or a version folder.")
    p.add_argument("export_dir", help="export folder of the stylizer")
    p.add_argument("image", help="image file or built-in name (chelsea, astronaut, coffee, rocket)")
    p.add_argument("-o", "--output", required=True, help="where to write the stylised image (PNG/JPEG)")
    p.add_argument("--size", type=int, default=None, help="resize so the longest side is SIZE first (default: keep)")
    p.set_defaults(func=run_stylize)

    p = sub.add_parser("train-stylizer", help="train a fast feed-forward stylizer for one style and export it",
                       description=TRAIN_DESCRIPTION)
    p.add_argument("style", help="style image (file or built-in name, e.g. starry_night)")
    p.add_argument("--name", default="stylizer", help="export name: <export-dir>/<name>/<version>")
    p.add_argument("--export-dir", default="exports")
    p.add_argument("--steps", type=int, default=600, help="training steps (default 600)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--crop-size", type=int, default=96, help="training crop side in pixels (default 96)")
    p.add_argument("--filters", type=int, default=16, help="width of the first conv (paper: 32)")
    p.add_argument("--alpha", type=float, default=1.0, help="content weight")
    p.add_argument("--beta", type=float, default=300.0, help="style weight")
    p.add_argument("--tv-weight", type=float, default=0.0, help="total-variation weight")
    p.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate")
    p.add_argument("--weights", default="hed_bsds500", help="VGG16 weights: hed_bsds500, imagenet or a .h5 path")
    p.add_argument("--compare-steps", type=int, default=100,
                   help="optimisation steps timed on the held-out photo for the comparison (0 = skip)")
    p.add_argument("--compare-size", type=int, default=256, help="longest side of the held-out photo (default 256)")
    p.add_argument("--residual-blocks", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run_train)


def run_stylize(args) -> int:
    import numpy as np
    from PIL import Image

    from tasks.cli.outputs import check_output
    from tasks.core.errors import UserError
    from tasks.workflows.fast_style import load_stylizer
    from tasks.workflows.style_transfer import fit_size, load_image

    check_output(args.output)
    image = load_image(args.image)
    if args.size:
        image = np.clip(np.round(fit_size(image, args.size)[0].numpy()), 0, 255).astype(np.uint8)
    try:
        stylizer = load_stylizer(args.export_dir)
    except (FileNotFoundError, OSError, KeyError) as err:
        raise UserError(f"export {args.export_dir} cannot be loaded ({err}); "
                        "give a folder written by `convforge train-stylizer`") from None
    out = stylizer(image[None])[0].numpy()
    Image.fromarray(out).save(args.output)
    print(f"wrote {args.output} ({out.shape[1]}x{out.shape[0]})")
    return 0


def run_train(args) -> int:
    from tasks.core.errors import UserError
    from tasks.workflows.fast_style import FastStyleSettings, run_fast_style
    from tasks.workflows.style_transfer import load_image

    if args.steps < 1 or args.crop_size < 16 or args.crop_size % 4:
        raise UserError(f"--steps must be >= 1 and --crop-size a multiple of 4 >= 16; "
                        f"received {args.steps} and {args.crop_size}")
    settings = FastStyleSettings(
        steps=args.steps, batch_size=args.batch_size, crop_size=args.crop_size, filters=args.filters,
        residual_blocks=args.residual_blocks,
        alpha=args.alpha, beta=args.beta, tv_weight=args.tv_weight, learning_rate=args.lr,
        weights=args.weights, seed=args.seed,
    )
    result = run_fast_style(load_image(args.style), settings, args.export_dir, args.name,
                            compare_steps=args.compare_steps, compare_size=args.compare_size)
    print(f"export {result['export_path']}; MLflow run {result['run_id']}")
    line = f"fast stylizer {result['fast_seconds_per_image'] * 1000:.1f} ms/image"
    if "optimisation_seconds_per_image" in result:
        line += (f" vs optimisation ({args.compare_steps} steps) {result['optimisation_seconds_per_image']:.1f} "
                 f"s/image: {result['speedup_fast_vs_optimisation']:.0f}x faster")
    print(line)
    return 0
