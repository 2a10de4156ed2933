"""Neural style transfer by optimisation (Gatys et al., 2015), tracked in MLflow.

The generated image G is the variable: start from noise or from the content
image plus noise, then descend ``J(G) = alpha * Jcontent + beta * Jstyle
(+ tv_weight * TV)`` on its pixels (Adam, or scipy's L-BFGS-B with gradients
from TensorFlow), keeping every pixel in [0, 255]. The costs live in
``models.style_costs``; the features come from a frozen VGG16
(``models.vgg16_hed``).

Example:
    >>> from tasks.workflows.style_transfer import StyleSettings, load_image, optimise
    >>> result = optimise(load_image("chelsea"), load_image("starry_night"), StyleSettings(steps=150))
    >>> result.image.shape      # uint8 (H, W, 3), longest side = settings.size
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tasks.core.errors import UserError

ASSETS = Path(__file__).parents[1] / "assets"
BUILTIN_IMAGES = ("astronaut", "chelsea", "coffee", "rocket", "starry_night")
DEFAULT_STYLE_WEIGHTS = {f"block{b}_conv1": 0.2 for b in range(1, 6)}


@dataclass
class StyleSettings:
    """Everything that defines one optimisation (logged as MLflow params)."""

    steps: int = 150
    size: int = 256  # longest side of G, in pixels
    alpha: float = 1.0
    beta: float = 1e3
    tv_weight: float = 0.0
    content_layer: str = "block4_conv2"
    style_weights: dict = field(default_factory=lambda: dict(DEFAULT_STYLE_WEIGHTS))
    init: str = "content"  # "content" (content + noise) or "random"
    noise: float = 0.2  # share of uniform noise mixed into the content init
    optimizer: str = "adam"  # "adam" or "lbfgs"
    learning_rate: float = 4.0  # Adam step in pixel units (0..255)
    weights: str = "hed_bsds500"
    seed: int = 0

    def validate(self) -> StyleSettings:
        from models.vgg16_hed import CONV_LAYERS

        if self.steps < 1 or self.size < 32:
            raise UserError(f"--steps must be >= 1 and --size >= 32; received {self.steps} and {self.size}")
        for layer in [self.content_layer, *self.style_weights]:
            if layer not in CONV_LAYERS:
                raise UserError(f"unknown VGG16 layer {layer!r}; choose from {', '.join(CONV_LAYERS)}")
        if self.init not in ("content", "random"):
            raise UserError(f"--init must be 'content' or 'random'; received {self.init!r}")
        if self.optimizer not in ("adam", "lbfgs"):
            raise UserError(f"--optimizer must be 'adam' or 'lbfgs'; received {self.optimizer!r}")
        return self


@dataclass
class StyleResult:
    image: np.ndarray  # uint8 (H, W, 3)
    history: dict  # {"J": [...], "Jc": [...], "Js": [...], "seconds": [...]} one entry per step
    run_id: str | None = None


def load_image(source: str | Path | np.ndarray) -> np.ndarray:
    """An RGB uint8 image from a file path or a built-in name (``chelsea``, ``starry_night``...)."""
    if isinstance(source, np.ndarray):
        image = source
    elif Path(source).is_file():
        from PIL import UnidentifiedImageError

        from pipelines.decode import ImageTooLarge, open_image

        try:
            with open_image(source) as im:
                image = np.asarray(im.convert("RGB"))
        except ImageTooLarge as err:
            raise UserError(str(err)) from None
        except (UnidentifiedImageError, OSError) as err:
            raise UserError(f"image {source} cannot be read ({err}); give a JPEG or PNG file") from None
    elif str(source) == "starry_night":
        return load_image(ASSETS / "starry_night.jpg")
    elif str(source) in BUILTIN_IMAGES:
        import skimage.data

        image = getattr(skimage.data, str(source))()
    else:
        raise UserError(f"image {source} not found; give an image file or one of: {', '.join(BUILTIN_IMAGES)}")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    return np.ascontiguousarray(image[..., :3]).astype(np.uint8)


def fit_size(image: np.ndarray, size: int) -> tf.Tensor:
    """Resize so the longest side is ``size`` (aspect kept): float32 ``(1, h, w, 3)`` in [0, 255]."""
    h, w = image.shape[:2]
    scale = size / max(h, w)
    shape = (max(1, round(h * scale)), max(1, round(w * scale)))
    return tf.image.resize(tf.cast(image[None], tf.float32), shape, antialias=True)


def perceptual_cost(settings: StyleSettings):
    """The ``PerceptualCost`` of ``settings`` on frozen VGG16 features."""
    from models.errors import WeightsUnavailableError
    from models.style_costs import PerceptualCost
    from models.vgg16_hed import vgg16_features

    try:
        features = vgg16_features([settings.content_layer, *settings.style_weights], settings.weights)
    except WeightsUnavailableError as err:
        raise UserError(str(err)) from None
    return PerceptualCost(features, settings.content_layer, dict(settings.style_weights))


def initial_image(content: tf.Tensor, init: str, noise: float, seed: int) -> tf.Tensor:
    """Uniform noise in [0, 255], or ``(1 - noise) * content + noise * uniform noise``."""
    rng = np.random.default_rng(seed)
    uniform = tf.constant(rng.uniform(0.0, 255.0, content.shape).astype(np.float32))
    return uniform if init == "random" else (1.0 - noise) * content + noise * uniform


def optimise(
    content: np.ndarray,
    style: np.ndarray,
    settings: StyleSettings,
    on_step: Callable[[int, dict, tf.Tensor], None] | None = None,
    verbose: int = 1,
) -> StyleResult:
    """Optimise G for ``content`` x ``style`` (uint8 RGB arrays); returns G and the cost history.

    ``on_step(step, costs, image)`` is called after each step (``image``
    float32 ``(1, h, w, 3)``), e.g. to log intermediate images.
    """
    settings.validate()
    c = fit_size(content, settings.size)
    s = tf.image.resize(tf.cast(style[None], tf.float32), c.shape[1:3], antialias=True)  # same nh, nw as G
    cost = perceptual_cost(settings)
    targets = cost.targets(c, s)
    image = tf.Variable(initial_image(c, settings.init, settings.noise, settings.seed))
    a, b, tvw = float(settings.alpha), float(settings.beta), float(settings.tv_weight)

    @tf.function
    def value_and_grad():
        with tf.GradientTape() as tape:
            j, jc, js, _ = cost(image, targets, a, b, tvw)
            j = tf.reduce_sum(j)
        return (j, tf.reduce_sum(jc), tf.reduce_sum(js)), tape.gradient(j, image)

    history = {"J": [], "Jc": [], "Js": [], "seconds": []}
    bar = keras.utils.Progbar(settings.steps, stateful_metrics=["J", "Jc", "Js"], verbose=verbose)
    start = time.perf_counter()

    def record(step, values):
        costs = dict(zip(("J", "Jc", "Js"), (float(v) for v in values), strict=True))
        for k, v in costs.items():
            history[k].append(v)
        history["seconds"].append(time.perf_counter() - start)
        bar.update(step, list(costs.items()))
        if on_step:
            on_step(step, costs, image)

    if settings.optimizer == "adam":
        _adam(image, value_and_grad, settings, record)
    else:
        _lbfgs(image, value_and_grad, settings, record)
    out = tf.cast(tf.round(tf.clip_by_value(image, 0.0, 255.0)), tf.uint8)[0].numpy()
    return StyleResult(out, history)


def _adam(image: tf.Variable, value_and_grad, settings: StyleSettings, record) -> None:
    opt = keras.optimizers.Adam(learning_rate=settings.learning_rate, beta_1=0.99, epsilon=1e-1)

    @tf.function
    def step():
        values, grad = value_and_grad()
        opt.apply_gradients([(grad, image)])
        image.assign(tf.clip_by_value(image, 0.0, 255.0))
        return values

    for i in range(1, settings.steps + 1):
        record(i, step())


def _lbfgs(image: tf.Variable, value_and_grad, settings: StyleSettings, record) -> None:
    """scipy L-BFGS-B on the flattened pixels; the [0, 255] box is its bounds."""
    from scipy.optimize import minimize

    shape = image.shape
    last = {}

    def fun(x):
        image.assign(x.reshape(shape).astype(np.float32))
        values, grad = value_and_grad()
        last["values"] = values
        return float(values[0]), grad.numpy().astype(np.float64).ravel()

    state = {"step": 0}

    def callback(xk):
        state["step"] += 1
        image.assign(xk.reshape(shape).astype(np.float32))
        record(state["step"], last["values"])

    x0 = image.numpy().astype(np.float64).ravel()
    bounds = np.stack([np.zeros_like(x0), np.full_like(x0, 255.0)], axis=1)
    result = minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=bounds, callback=callback,
                      options={"maxiter": settings.steps, "maxcor": 20})
    image.assign(result.x.reshape(shape).astype(np.float32))


def comparison_figure(images, labels=("Content C", "Style S", "Generated G"), title: str = ""):
    """Images side by side with their labels (the C | S | G figure by default); a matplotlib Figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(images), figsize=(4.4 * len(images), 4.4), squeeze=False)
    for ax, img, name in zip(axes[0], images, labels, strict=False):
        ax.imshow(img)
        ax.set_title(name)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def run_style_transfer(
    content: np.ndarray,
    style: np.ndarray,
    settings: StyleSettings,
    output: str | Path | None = None,
    image_every: int = 25,
    run_name: str | None = None,
    experiment: str = "style_transfer",
    verbose: int = 1,
) -> StyleResult:
    """``optimise`` inside one MLflow run: params, per-step J/Jc/Js, images every
    ``image_every`` steps (``progress/``), the final G and the C | S | G figure."""
    from PIL import Image

    from tasks.core import tracking
    from tasks.figures.plots import save

    tracking.configure()
    log = tracking.SafeLogger(tracking.spill_dir(".", "style"))  # an outage queues the rest for sync-runs
    with log.run(run_name=run_name, experiment=experiment) as run_id:
        params = {k: v for k, v in asdict(settings).items() if k != "style_weights"}
        params.update({f"style_weight.{k}": v for k, v in settings.style_weights.items()})
        log("log_params", params)

        def on_step(step, costs, image):
            log("log_metrics", costs, step=step)
            if image_every and (step % image_every == 0 or step == settings.steps):
                pixels = tf.cast(tf.round(tf.clip_by_value(image[0], 0, 255)), tf.uint8).numpy()
                log("log_image", pixels, artifact_file=f"progress/step_{step:05d}.png")

        result = optimise(content, style, settings, on_step=on_step, verbose=verbose)
        seconds = result.history["seconds"][-1]
        log("log_metrics", {"seconds": seconds, "steps_per_second": len(result.history["J"]) / seconds})
        log("log_image", result.image, artifact_file="generated.png")
        c = fit_size(content, settings.size)[0].numpy().astype(np.uint8)
        title = f"alpha={settings.alpha:g} beta={settings.beta:g} {settings.optimizer} {settings.steps} steps"
        with tempfile.TemporaryDirectory() as tmp:
            fig = comparison_figure((c, style, result.image), title=title)
            fig_path = save(fig, Path(tmp) / "content_style_generated.png")
            log("log_artifact", str(fig_path))
            if output:
                Path(output).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(result.image).save(output)
        result.run_id = run_id
    return result
