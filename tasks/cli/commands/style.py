"""``convforge style CONTENT STYLE -o out.png``: neural style transfer by optimising the image."""

from __future__ import annotations

DEFAULT_STYLE_LAYERS = "block1_conv1,block2_conv1,block3_conv1,block4_conv1,block5_conv1"


def add_parser(sub) -> None:
    p = sub.add_parser(
        "style", help="style transfer: optimise G for J = alpha*Jcontent + beta*Jstyle",
        description="Generate an image with the content of CONTENT and the style of STYLE by gradient descent "
                    "on its pixels (Gatys et al. 2015), tracked in MLflow (experiment style_transfer). "
                    "CONTENT/STYLE are image files or built-in names: chelsea, astronaut, coffee, rocket, starry_night.")
    p.add_argument("content", help="content image C (file or built-in name)")
    p.add_argument("style", help="style image S (file or built-in name)")
    p.add_argument("-o", "--output", required=True, help="where to write G (PNG/JPEG)")
    p.add_argument("--steps", type=int, default=150, help="optimisation steps (default 150)")
    p.add_argument("--size", type=int, default=256, help="longest side of G in pixels (default 256)")
    p.add_argument("--alpha", type=float, default=1.0, help="content weight (default 1)")
    p.add_argument("--beta", type=float, default=1e3, help="style weight (default 1000)")
    p.add_argument("--tv-weight", type=float, default=0.0, help="total-variation weight (default 0 = off)")
    p.add_argument("--content-layer", default="block4_conv2", help="VGG16 layer of Jcontent (default block4_conv2)")
    p.add_argument("--style-layers", default=DEFAULT_STYLE_LAYERS, help="comma-separated VGG16 layers of Jstyle")
    p.add_argument("--style-weights", default=None,
                   help="comma-separated lambda[l], one per style layer (default: equal, summing to 1)")
    p.add_argument("--init", choices=["content", "random"], default="content",
                   help="start from content + noise (default) or uniform noise")
    p.add_argument("--noise", type=float, default=0.2, help="noise share of the content init (default 0.2)")
    p.add_argument("--optimizer", choices=["adam", "lbfgs"], default="adam")
    p.add_argument("--lr", type=float, default=4.0, help="Adam step size in pixel units (default 4)")
    p.add_argument("--weights", default="hed_bsds500",
                   help="VGG16 weights: hed_bsds500 (offline, default), imagenet, or a local .h5 path")
    p.add_argument("--image-every", type=int, default=25, help="log G to MLflow every N steps (0 = only the end)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--run-name", default=None, help="MLflow run name")
    p.set_defaults(func=run)


def parse_style_weights(layers: str, weights: str | None) -> dict:
    """``"a,b", "0.3,0.7"`` -> ``{"a": 0.3, "b": 0.7}``; equal weights when ``weights`` is None."""
    from tasks.core.errors import UserError

    names = [n.strip() for n in layers.split(",") if n.strip()]
    if not names:
        raise UserError("--style-layers is empty; give comma-separated VGG16 layers, e.g. block1_conv1,block3_conv1")
    if weights is None:
        return {n: 1.0 / len(names) for n in names}
    try:
        values = [float(w) for w in weights.split(",")]
    except ValueError:
        raise UserError(f"--style-weights {weights!r} must be comma-separated numbers") from None
    if len(values) != len(names):
        raise UserError(f"--style-weights has {len(values)} values for {len(names)} --style-layers; give one per layer")
    return dict(zip(names, values, strict=True))


def run(args) -> int:
    from tasks.cli.outputs import check_output
    from tasks.workflows.style_transfer import StyleSettings, load_image, run_style_transfer

    check_output(args.output)
    settings = StyleSettings(
        steps=args.steps, size=args.size, alpha=args.alpha, beta=args.beta, tv_weight=args.tv_weight,
        content_layer=args.content_layer, style_weights=parse_style_weights(args.style_layers, args.style_weights),
        init=args.init, noise=args.noise, optimizer=args.optimizer, learning_rate=args.lr,
        weights=args.weights, seed=args.seed,
    ).validate()
    content, style = load_image(args.content), load_image(args.style)
    result = run_style_transfer(content, style, settings, output=args.output,
                                image_every=args.image_every, run_name=args.run_name)
    h = result.history
    print(f"J {h['J'][0]:.4g} -> {h['J'][-1]:.4g} (Jc {h['Jc'][-1]:.4g}, Js {h['Js'][-1]:.4g}) "
          f"in {h['seconds'][-1]:.1f} s")
    print(f"wrote {args.output}; MLflow run {result.run_id}")
    return 0
