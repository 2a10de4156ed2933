"""``convforge edges IMAGE -o edges.png [--filter notes|sobel|scharr]``: edge maps of a photo."""

from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("edges", help="vertical/horizontal edge maps of an image (fixed 1,0,-1 conv filters)",
                       description="Convolve a grayscale version of IMAGE with the fixed vertical and horizontal "
                                   "edge filters (the notes' 1,0,-1 matrices, or Sobel/Scharr) and write a figure: "
                                   "input, vertical map, horizontal map and magnitude. Red = positive response "
                                   "(light to dark, left->right or top->bottom), blue = negative (dark to light).")
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
    import tensorflow as tf

    from models.edges import edge_detector
    from tasks import plots
    from tasks.commands.predict import read_images

    (data,) = read_images([args.image])
    gray = tf.io.decode_image(data, channels=1, expand_animations=False).numpy()
    maps = edge_detector(args.filter).predict(gray[None], verbose=0)[0]
    out = plots.save(edge_figure(gray[..., 0], maps, args.filter), Path(args.output))
    print(f"wrote {out} ({gray.shape[1]}x{gray.shape[0]}, filter {args.filter})")
    return 0
