"""``convforge edges IMAGE -o edges.png [--filter notes|sobel|scharr]``: edge maps of a photo."""

from __future__ import annotations

DESCRIPTION = ("Convolve a grayscale version of IMAGE with the fixed vertical and horizontal edge filters (the "
               "notes' 1,0,-1 matrices, or Sobel/Scharr) and write a figure: input, vertical map, horizontal map and "
               "magnitude. Red = positive response (light to dark, left->right or top->bottom), blue = negative "
               "(dark to light).")


def add_parser(sub) -> None:
    p = sub.add_parser("edges", help="vertical/horizontal edge maps of an image (fixed 1,0,-1 conv filters)",
                       description=DESCRIPTION)
    p.add_argument("image", help="an image file (JPEG, PNG, BMP or GIF)")
    p.add_argument("-o", "--output", default="edges.png", help="the PNG figure to write (default: edges.png)")
    p.add_argument("--filter", default="notes", choices=["notes", "sobel", "scharr"],
                   help="which 3x3 pair: notes (1,0,-1), sobel (1,2,1 weights) or scharr (3,10,3); default notes")
    p.set_defaults(func=run)


def edge_figure(gray, maps, kind: str):
    """A 1x4 figure: input, vertical and horizontal responses (signed colours), magnitude.

    ``maps`` come from a "valid" convolution (2 pixels smaller than ``gray``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    vertical, horizontal = maps[..., 0], maps[..., 1]
    magnitude = np.sqrt(vertical**2 + horizontal**2)
    limit = float(max(np.percentile(np.abs(maps), 99.5), 1e-6))  # a few extreme pixels don't wash out the rest
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.4))
    panels = [
        (gray, "input (grayscale)", "gray", 0, 255),
        (vertical, f"vertical edges ({kind})", "RdBu_r", -limit, limit),
        (horizontal, f"horizontal edges ({kind})", "RdBu_r", -limit, limit),
        (magnitude, "magnitude sqrt(v^2 + h^2)", "gray", 0, limit),
    ]
    for ax, (img, title, cmap, lo, hi) in zip(axes, panels, strict=True):
        shown = ax.imshow(img, cmap=cmap, vmin=lo, vmax=hi)
        ax.set_title(title)
        ax.axis("off")
        if cmap == "RdBu_r":
            fig.colorbar(shown, ax=ax, fraction=0.046, label="+ light->dark, - dark->light")
    fig.tight_layout()
    return fig


def run(args) -> int:
    from models.edges import edge_detector
    from pipelines.decode import decode_image
    from tasks.cli.commands.predict import read_images
    from tasks.cli.outputs import FIGURE_SUFFIXES, check_output
    from tasks.core.errors import UserError, first_line
    from tasks.figures import plots

    output = check_output(args.output, FIGURE_SUFFIXES)
    (data,) = read_images([args.image])
    try:
        gray = decode_image(data, 1, None).numpy()  # the guarded decoder: GIF/BMP become grey too
    except Exception as err:  # noqa: BLE001 - tf.errors.InvalidArgumentError: a damaged body
        raise UserError(f"image {args.image} cannot be decoded ({first_line(err)}); give an undamaged image") from None
    if min(gray.shape[:2]) < 3:
        raise UserError(f"image {args.image} is {gray.shape[1]}x{gray.shape[0]} pixels; the 3x3 edge filters need "
                        "at least 3x3")
    maps = edge_detector(args.filter).predict(gray[None], verbose=0)[0]
    out = plots.save(edge_figure(gray[..., 0], maps, args.filter), output)
    print(f"wrote {out} ({gray.shape[1]}x{gray.shape[0]}, filter {args.filter})")
    return 0

