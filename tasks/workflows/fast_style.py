"""Fast style transfer (Johnson et al., 2016): train a feed-forward stylizer, export it for serving.

The transformation network (``models.transform_net``) is trained, for one
style image, on random crops of real photos with the same perceptual costs as
the optimisation method (``models.style_costs``): the content target is each
training photo's own activation, the style target the Grams of the style
image resized to the crop size. Training goes through ``model.fit`` (a Keras
``train_step``), so the progress bar and MLflow see every epoch.

The export (``serving.export.export_image_model``, ``image_size=None``) takes
uint8 images of any size and returns the stylised uint8 image of the same size
under the output name ``image``.

Example:
    >>> net, history = train_stylizer(load_image("starry_night"), FastStyleSettings(steps=300))
    >>> path = export_stylizer(net, "exports", "starry_night")
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from models.style_costs import PerceptualCost
from models.transform_net import stylize, transform_net

JOHNSON_STYLE_WEIGHTS = {"block1_conv2": 0.25, "block2_conv2": 0.25, "block3_conv3": 0.25, "block4_conv3": 0.25}
HELD_OUT_PHOTO = "chelsea"  # never trained on: the stylizer is judged on it


@dataclass
class FastStyleSettings:
    """Everything that defines one stylizer training (logged as MLflow params)."""

    steps: int = 600
    batch_size: int = 4
    crop_size: int = 96
    filters: int = 16
    residual_blocks: int = 5
    alpha: float = 1.0
    beta: float = 300.0
    tv_weight: float = 0.0
    content_layer: str = "block2_conv2"
    style_weights: dict = field(default_factory=lambda: dict(JOHNSON_STYLE_WEIGHTS))
    learning_rate: float = 2e-3
    weights: str = "hed_bsds500"
    seed: int = 0


def training_photos() -> list[np.ndarray]:
    """Real colour photos shipped in scikit-image, scikit-learn and matplotlib (uint8 RGB)."""
    import matplotlib.cbook
    import skimage.data
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = [getattr(skimage.data, n)() for n in ("astronaut", "coffee", "rocket", "immunohistochemistry")]
    photos.append(np.repeat(skimage.data.camera()[..., None], 3, axis=-1))
    photos.extend(load_sample_images().images)
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        photos.append(np.asarray(Image.open(f).convert("RGB")))
    return [np.ascontiguousarray(p[..., :3]).astype(np.uint8) for p in photos]


def crop_dataset(photos: list[np.ndarray], crop_size: int, batch_size: int, seed: int) -> tf.data.Dataset:
    """Endless batches of random square crops (side 0.3-1x the photo's shorter side,
    resized to ``crop_size``, randomly mirrored): uint8 ``(B, crop, crop, 3)``."""
    rng = np.random.default_rng(seed)

    def crops():
        while True:
            p = photos[rng.integers(len(photos))]
            h, w = p.shape[:2]
            side = int(rng.uniform(0.3, 1.0) * min(h, w))
            y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
            crop = tf.image.resize(p[y:y + side, x:x + side], (crop_size, crop_size), antialias=True)
            crop = crop.numpy()[:, ::-1] if rng.random() < 0.5 else crop.numpy()
            yield np.clip(np.round(crop), 0, 255).astype(np.uint8)

    spec = tf.TensorSpec((crop_size, crop_size, 3), tf.uint8)
    return tf.data.Dataset.from_generator(crops, output_signature=spec).batch(batch_size).prefetch(2)


class StylizerTrainer(keras.Model):
    """Wraps a transformation net; ``fit`` minimises the mean perceptual cost J over a batch."""

    def __init__(self, net: keras.Model, cost: PerceptualCost, style_grams: dict,
                 alpha: float, beta: float, tv_weight: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.net, self.cost, self.style_grams = net, cost, style_grams
        self.weights_abt = (float(alpha), float(beta), float(tv_weight))
        self.trackers = {k: keras.metrics.Mean(name=k) for k in ("J", "Jc", "Js")}

    def call(self, images, training=False):
        return self.net(images, training=training)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def train_step(self, images):
        content = self.cost.features(tf.cast(images, tf.float32))[self.cost.content_layer]
        targets = {"content": content, "grams": self.style_grams}
        with tf.GradientTape() as tape:
            generated = self.net(images, training=True)
            j, jc, js, _ = self.cost(generated, targets, *self.weights_abt)
            loss = tf.reduce_mean(j)
        variables = self.net.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        for name, value in (("J", j), ("Jc", jc), ("Js", js)):
            self.trackers[name].update_state(value)
        return {k: t.result() for k, t in self.trackers.items()}


def train_stylizer(style: np.ndarray, settings: FastStyleSettings, callbacks=(), verbose: int = 1):
    """Train a transformation net for ``style`` (uint8 RGB); returns ``(net, keras History)``."""
    from tasks.workflows.style_transfer import StyleSettings, perceptual_cost

    keras.utils.set_random_seed(settings.seed)
    cost = perceptual_cost(StyleSettings(content_layer=settings.content_layer,
                                         style_weights=settings.style_weights, weights=settings.weights))
    size = (settings.crop_size, settings.crop_size)
    s = tf.image.resize(tf.cast(style[None], tf.float32), size, antialias=True)
    grams = cost.targets(s, s)["grams"]
    net = transform_net(settings.filters, settings.residual_blocks)
    trainer = StylizerTrainer(net, cost, grams, settings.alpha, settings.beta, settings.tv_weight)
    trainer.compile(optimizer=keras.optimizers.Adam(settings.learning_rate))
    data = crop_dataset(training_photos(), settings.crop_size, settings.batch_size, settings.seed)
    epochs = max(1, settings.steps // 50)
    history = trainer.fit(data, epochs=epochs, steps_per_epoch=max(1, settings.steps // epochs),
                          callbacks=list(callbacks), shuffle=False, verbose=verbose)
    return net, history


def export_stylizer(net: keras.Model, root, name: str):
    """Export ``net`` in the TF Serving layout: uint8 ``images`` (any size) -> uint8 ``image``."""
    from pipelines.decode import decode_image
    from serving.export import export_image_model

    return export_image_model(lambda images: {"image": stylize(net, images)}, net, root, name,
                              image_size=None, channels=3, decode=decode_image)


def load_stylizer(export_dir):
    """A callable uint8 ``(N, H, W, 3)`` -> uint8 ``(N, H, W, 3)`` from an export
    (``<root>/<name>`` -> newest version, or a version folder)."""
    from serving.loader import load_export

    served = load_export(export_dir)
    signature = served.signatures["serving_default"]

    def run(images):
        return signature(images=tf.convert_to_tensor(images, tf.uint8))["image"]

    run.served = served  # keep the loaded object (and its variables) alive
    return run


def run_fast_style(style: np.ndarray, settings: FastStyleSettings, export_root="exports", name="stylizer",
                   compare_steps: int = 100, compare_size: int = 256, verbose: int = 1) -> dict:
    """Train, export and compare inside one MLflow run (experiment ``fast_style``).

    Logs params, per-epoch J/Jc/Js, the export, and on the held-out photo the
    stylizer's seconds per image next to ``compare_steps`` steps of the
    optimisation method (same costs, same size) with a content | fast |
    optimised figure. Returns ``{"run_id", "export_path", metrics...}``.
    """
    import tempfile
    import time
    from dataclasses import asdict
    from pathlib import Path

    from tasks.core import tracking
    from tasks.figures.plots import save
    from tasks.workflows.style_transfer import StyleSettings, comparison_figure, fit_size, load_image, optimise

    tracking.configure()
    log = tracking.SafeLogger(tracking.spill_dir(".", "fast_style"))  # an outage queues the rest for sync-runs
    with log.run(run_name=name, experiment="fast_style") as run_id:
        params = {k: v for k, v in asdict(settings).items() if k != "style_weights"}
        params.update({f"style_weight.{k}": v for k, v in settings.style_weights.items()})
        log("log_params", params)
        log_epoch = tracking.MlflowEpochMetrics(log)
        start = time.perf_counter()
        net, history = train_stylizer(style, settings, callbacks=[log_epoch], verbose=verbose)
        metrics = {"train_seconds": time.perf_counter() - start}
        export_path = export_stylizer(net, export_root, name)
        log("log_param", "export_path", str(export_path))

        photo = fit_size(load_image(HELD_OUT_PHOTO), compare_size)
        photo = tf.cast(tf.round(photo), tf.uint8)
        serve = load_stylizer(export_path)
        serve(photo)  # warm-up
        start, repeats = time.perf_counter(), 5
        for _ in range(repeats):
            fast = serve(photo)[0].numpy()
        metrics["fast_seconds_per_image"] = (time.perf_counter() - start) / repeats
        figure_images = [photo[0].numpy(), style, fast]
        if compare_steps:
            slow = optimise(photo[0].numpy(), style, StyleSettings(
                steps=compare_steps, size=compare_size, alpha=settings.alpha, beta=settings.beta,
                content_layer=settings.content_layer, style_weights=settings.style_weights,
                weights=settings.weights), verbose=0)
            metrics["optimisation_seconds_per_image"] = slow.history["seconds"][-1]
            metrics["speedup_fast_vs_optimisation"] = slow.history["seconds"][-1] / metrics["fast_seconds_per_image"]
            figure_images.append(slow.image)
        log("log_metrics", metrics)
        with tempfile.TemporaryDirectory() as tmp:
            fig = comparison_figure(figure_images[:3], ("Content C", "Style S", "Fast stylizer"),
                                    title=f"fast stylizer on held-out {HELD_OUT_PHOTO}")
            log("log_artifact", str(save(fig, Path(tmp) / "content_style_fast.png")))
            if compare_steps:
                fig = comparison_figure((photo[0].numpy(), fast, slow.image),
                                        ("Content C", "Fast stylizer", "Optimised G"), title=f"fast ({metrics['fast_seconds_per_image']:.3f} s) vs "
                                              f"{compare_steps} optimisation steps "
                                              f"({metrics['optimisation_seconds_per_image']:.1f} s)")
                log("log_artifact", str(save(fig, Path(tmp) / "fast_vs_optimisation.png")))
        return {"run_id": run_id, "export_path": export_path, **metrics}
