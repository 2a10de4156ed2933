"""On-the-fly augmentation: does it scale with cores, beat the naive chain, and keep up with training?

    .venv/bin/python benchmarks/augment.py            # ~4 minutes on 2 cores

1. The full seed policy (mirror, random crop, rotation, shear, local warping,
   colour shift, PCA colour) at 112 and 224 px on real photos: images/s on 1
   core, 2 cores and all cores (every thread of the process pinned to that
   many CPUs, tf.data's private pool two threads per core, and the same with one
   thread per core for comparison: XLA runs compiled loops on TF's intra-op
   pool too, so a tf.data thread limit alone would let "1 thread" use more
   than one core), next to the naive
   chain (the same transforms as one albumentations Compose per image inside
   ``tf.numpy_function``, AUTOTUNE) measured in the same run. Variants are
   measured in interleaved rounds and the best round of each is kept (the
   machine is shared; the best round is the least disturbed one). Also: the
   same policy after batching (``augment_batches``, as the classification
   trainer places it), "ours" on 1 tf.data thread without pinning, and the
   machine's own 1 -> 2 core scaling (pure-Python busy loops in 1 and 2
   pinned processes: the most any code can scale here).
2. The standard Fashion-MNIST recipe (LeNet-5, batch 64, ``augment: [mirror]``):
   seconds per training step with live augmentation vs. the same pipeline fed
   pre-augmented tensors, on the trainer's path (a permutation per epoch, then
   ``augment_batches``, as ``convforge train`` feeds in-memory sets) and per
   element (``augment_dataset``, then shuffle + batch).

Goals: >= 1.8x from 1 to 2 threads (pinned cores); >= 3x the naive chain; live/cached step
time <= 1.10.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.machine import table, write_section  # noqa: E402
from pipelines.augment import augment_batches, augment_dataset  # noqa: E402
from pipelines.pca_colour import fit_pca  # noqa: E402

ALL_CPUS = sorted(os.sched_getaffinity(0))
THREADS_PER_CORE = 2  # tf.data threads per pinned core: a thread waiting in one stage leaves its core to another
POLICY = ["mirror", {"random_crop": {"padding": 8, "scale": [0.6, 1.0]}}, {"rotate": {"degrees": 15}},
          {"shear": {"degrees": 10}}, {"elastic": {"magnitude": 0.03}}, {"colour_shift": {"shift": 20}},
          {"pca_colour": {"std": 0.1}}]


def photos(size: int, count: int = 256) -> np.ndarray:
    """Real photos (scikit-image), random square crops resized to ``size``."""
    from skimage import data
    from skimage.transform import resize

    rng = np.random.default_rng(0)
    sources = [getattr(data, n)() for n in ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field")]
    out = []
    for i in range(count):
        img = sources[i % len(sources)]
        side = int(min(img.shape[:2]) * rng.uniform(0.6, 1.0))
        y, x = rng.integers(0, img.shape[0] - side + 1), rng.integers(0, img.shape[1] - side + 1)
        out.append(np.round(resize(img[y : y + side, x : x + side], (size, size), anti_aliasing=True) * 255).astype(np.uint8))
    return np.stack(out)


def naive_chain(size: int, images: np.ndarray):
    """The same policy as one albumentations Compose per image (the baseline)."""
    try:
        import albumentations as A  # a benchmark-only dependency: the `bench` / `dev` extra
    except ImportError as error:
        raise SystemExit("the naive baseline needs albumentations: pip install -e '.[bench]' (or '.[dev]')") from error

    compose = A.Compose([
        A.HorizontalFlip(p=0.5),
        A.PadIfNeeded(size + 16, size + 16, border_mode=0),
        A.RandomResizedCrop((size, size), scale=(0.6 * size**2 / (size + 16) ** 2, size**2 / (size + 16) ** 2), ratio=(1, 1), p=1),
        A.Affine(rotate=(-15, 15), shear={"x": (-10, 10), "y": (0, 0)}, border_mode=0, p=1),
        A.ElasticTransform(alpha=size * 0.03 * 10, sigma=size / 10, p=1),
        A.RGBShift(20, 20, 20, p=1),
        A.FancyPCA(alpha=0.1, p=1),
    ])

    def run(image):
        return compose(image=image)["image"]

    def fn(image, label):
        out = tf.numpy_function(run, [image], tf.uint8)
        return tf.ensure_shape(out, image.shape), label

    return fn


def pipeline(images, kind: str, threads: int, pca=None) -> tf.data.Dataset:
    ds = tf.data.Dataset.from_tensor_slices((images, np.zeros(len(images), np.int64))).repeat()
    if kind == "ours":
        ds = augment_dataset(ds, POLICY, seed=None, pca=pca).batch(64)
    elif kind == "ours_batched":
        ds = augment_batches(ds.batch(64), POLICY, seed=None, pca=pca)
    else:
        ds = ds.map(naive_chain(images.shape[1], images), num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
        ds = ds.batch(64)
    ds = ds.prefetch(2)
    options = tf.data.Options()
    options.threading.private_threadpool_size = threads
    options.threading.max_intra_op_parallelism = 1
    return ds.with_options(options)


def pin(cores: int | None) -> None:
    """Pin every thread of this process (and so the threads they start) to the first
    ``cores`` CPUs; None: all of them again."""
    cpus = set(ALL_CPUS[:cores] if cores else ALL_CPUS)
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except OSError:  # the thread has ended
            pass


def rate(ds: tf.data.Dataset, seconds: float, cores: int | None) -> tuple[float, float]:
    """(images/s, CPU microseconds per image over all threads) for ``seconds`` on ``cores`` CPUs."""
    pin(cores)
    try:
        it = iter(ds)
        for _ in range(3):
            next(it)
        n, start, cpu = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - start < seconds:
            n += int(next(it)[0].shape[0])
        return n / (time.perf_counter() - start), (time.process_time() - cpu) / n * 1e6
    finally:
        pin(None)


BUSY_LOOP = """import os, time
os.sched_setaffinity(0, {%d})
n, end = 0, time.perf_counter() + %f
while time.perf_counter() < end:
    n += 1
print(n)"""


def machine_scaling(seconds: float) -> float:
    """Iterations of a busy loop in 2 processes on 2 cores / in 1 process on 1 core."""
    def run(cpus) -> int:
        procs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP % (c, seconds)], stdout=subprocess.PIPE, text=True)
                 for c in cpus]
        return sum(int(p.communicate()[0]) for p in procs)

    return run(ALL_CPUS[:2]) / run(ALL_CPUS[:1])


def threads_for(kind: str, cores: int) -> int:
    """tf.data's private pool: THREADS_PER_CORE per pinned core ('_1tpc': one), one when unpinned."""
    if kind.endswith("_unpinned"):
        return 1
    return cores if kind.endswith("_1tpc") else cores * THREADS_PER_CORE


def throughput(size: int, rounds: int, seconds: float) -> dict:
    images = photos(size)
    pca = fit_pca(images)
    all_cores = len(ALL_CPUS)
    variants = [("ours", 1), ("ours", 2), ("ours", all_cores), ("naive", 1), ("naive", all_cores),
                ("ours_batched", 1), ("ours_batched", 2), ("ours_1tpc", 1), ("ours_1tpc", 2),
                ("ours_batched_1tpc", 1), ("ours_batched_1tpc", 2), ("ours_unpinned", 1)]
    datasets = {k: pipeline(images, k[0].removesuffix("_unpinned").removesuffix("_1tpc"), threads_for(*k), pca)
                for k in dict.fromkeys(variants)}
    best = {k: (0.0, 0.0) for k in datasets}
    for _ in range(rounds):
        for k, ds in datasets.items():
            best[k] = max(best[k], rate(ds, seconds, None if k[0].endswith("_unpinned") else k[1]))
    return best


def step_time(steps: int, rounds: int) -> dict:
    """Seconds (wall, CPU) per LeNet-5 training step: live [mirror] augmentation vs pre-augmented tensors,
    on the trainer's path (a permutation per epoch, ``augment_batches``) and per element (shuffle + batch)."""
    from models import build
    from pipelines.catalog import load_arrays
    from pipelines.splits import batch, permuted_batches
    from tasks.core.recipe import load_recipe

    recipe = load_recipe("fashion_mnist_lenet5")
    bs, policy, seed = recipe["train"]["batch_size"], recipe["data"]["augment"], recipe["seed"]
    fm = load_arrays("fashion_mnist")
    x, y = fm.x_train[: steps * bs], fm.y_train[: steps * bs]
    source = tf.data.Dataset.from_tensor_slices((x, y))
    pre = np.stack([im for im, _ in augment_dataset(source, policy, seed).as_numpy_iterator()])
    pipelines = {
        "trainer live": permuted_batches(x, y, bs, seed, transform=lambda ds: augment_batches(ds, policy, seed)),
        "trainer cached": permuted_batches(pre, y, bs, seed),
        "element live": batch(augment_dataset(source, policy, seed), bs, 10000, seed, training=True),
        "element cached": batch(tf.data.Dataset.from_tensor_slices((pre, y)).cache(), bs, 10000, seed, training=True),
    }
    model = build(recipe["model"]["name"], x.shape[1:], 10, **recipe["model"]["options"])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    for ds in pipelines.values():  # build, trace and warm up every pipeline
        model.fit(ds, epochs=1, verbose=0)
    times = {name: [] for name in pipelines}
    for _ in range(rounds):
        for name, ds in pipelines.items():
            start, cpu = time.perf_counter(), time.process_time()
            model.fit(ds, epochs=1, verbose=0)
            times[name].append(((time.perf_counter() - start) / steps, (time.process_time() - cpu) / steps))
    return {name: min(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (best kept)")
    parser.add_argument("--steps", type=int, default=300, help="training steps per step-time measurement")
    args = parser.parse_args()
    all_threads = len(ALL_CPUS)
    load_before = os.getloadavg()[0]
    rows, cpu_rows, batched_rows, one_thread_rows, goals = [], [], [], [], []
    machine = max(machine_scaling(args.seconds) for _ in range(args.rounds))
    for size in (112, 224):
        r = throughput(size, args.rounds, args.seconds)
        scaling = r[("ours", 2)][0] / r[("ours", 1)][0]
        vs_naive = r[("ours", all_threads)][0] / r[("naive", all_threads)][0]
        rows.append([f"{size} px", *(f"{r[k][0]:.0f}" for k in (("ours", 1), ("ours", 2), ("ours", all_threads),
                                                                 ("naive", 1), ("naive", all_threads))),
                     f"{scaling:.2f}x", f"{vs_naive:.2f}x"])
        cpu_ratio = r[("naive", 1)][1] / r[("ours", 1)][1]
        unpinned = r[("ours_unpinned", 1)]
        cpu_rows.append([f"{size} px", f"{r[('ours', 1)][1]:.0f}", f"{r[('ours', 2)][1]:.0f}", f"{r[('naive', 1)][1]:.0f}",
                         f"{cpu_ratio:.2f}x",
                         f"{unpinned[0]:.0f}", f"{unpinned[0] * unpinned[1] / 1e6:.2f}"])
        b1, b2 = r[("ours_batched", 1)], r[("ours_batched", 2)]
        batched_rows.append([f"{size} px", f"{b1[0]:.0f}", f"{b2[0]:.0f}", f"{b2[0] / b1[0]:.2f}x", f"{b1[1]:.0f}"])
        o1, o2 = r[("ours_1tpc", 1)], r[("ours_1tpc", 2)]
        t1, t2 = r[("ours_batched_1tpc", 1)], r[("ours_batched_1tpc", 2)]
        one_thread_rows.append([f"{size} px", f"{o1[0]:.0f}", f"{o2[0]:.0f}", f"{o2[0] / o1[0]:.2f}x",
                                f"{t1[0]:.0f}", f"{t2[0]:.0f}", f"{t2[0] / t1[0]:.2f}x"])
        goals.append((size, scaling, vs_naive, b2[0] / b1[0]))
        print(rows[-1], cpu_rows[-1], batched_rows[-1], flush=True)
    st = step_time(args.steps, max(7, args.rounds))
    ratio, ratio_element = st["trainer live"][0] / st["trainer cached"][0], st["element live"][0] / st["element cached"][0]
    load_after = os.getloadavg()[0]
    body = [
        f"### Full seed policy, images/s (process pinned to n cores, {THREADS_PER_CORE}n tf.data threads; best of {args.rounds} "
        f"interleaved rounds of {args.seconds:.0f} s)",
        "",
        "Policy: `" + str(POLICY) + "`",
        "",
        table(["size", "ours 1 core", "ours 2 cores", f"ours all ({all_threads})", "naive 1 core",
               f"naive all ({all_threads})", "ours 1 -> 2 cores (goal >= 1.8x)", "ours / naive, all cores (goal >= 3x)"], rows),
        "",
        "Naive chain: the same transforms as one albumentations Compose per image in `tf.numpy_function`, "
        "`num_parallel_calls=AUTOTUNE`.",
        "",
        f"This machine's own 1 -> 2 core scaling: **{machine:.2f}x** (pure-Python busy loops, 1 process on 1 core "
        "vs 2 processes on 2 cores, best round): the ceiling for any code here.",
        "",
        "Ours: the per-pixel work (one bilinear resampling through the composed map, colour offsets, "
        "rounding) is one XLA-compiled function per micro-batch of fixed-size images; the random "
        "parameters are drawn per image outside it.",
        "",
        "CPU time per image (all threads, 1-core runs; independent of how busy the machine is). "
        "Unpinned, with only tf.data limited to 1 thread, ours uses more than one core (XLA's loops "
        "run on TF's intra-op pool, and the tf.data stages around the map run beside it), which is "
        "why the thread-scaling rows pin the process:",
        "",
        table(["size", "ours us/img", "ours us/img on 2 cores", "naive us/img", "naive / ours",
               "ours 1 tf.data thread unpinned, img/s",
               "cores it used"], cpu_rows),
        "",
        "Same policy placed after batching (`augment_batches` on batches of 64, as the classification "
        "trainer uses it; no unbatch/re-batch):",
        "",
        table(["size", "1 core img/s", "2 cores img/s", "1 -> 2 cores", "CPU us/img"], batched_rows),
        "",
        f"With one tf.data thread per core instead of {THREADS_PER_CORE} (same pinning, same rounds): a thread "
        "that waits in one stage (unbatch, batch, prefetch hand-over) leaves its core idle, so with fewer "
        "threads the scaling can only be lower; the difference varies from run to run:",
        "",
        table(["size", "ours 1 core", "ours 2 cores", "1 -> 2", "after batching 1 core", "after batching 2 cores",
               "1 -> 2"], one_thread_rows),
        "",
        "### Training step time, standard Fashion-MNIST recipe (LeNet-5, batch 64, `augment: [mirror]`)",
        "",
        table(["pipeline", "ms / step (best round)", "CPU ms / step"],
              [[label, f"{st[key][0] * 1e3:.2f}", f"{st[key][1] * 1e3:.2f}"] for key, label in (
                  ("trainer live", "trainer's path, live: a permutation per epoch, then augment_batches"),
                  ("trainer cached", "trainer's path, pre-augmented tensors"),
                  ("element live", "per element, live: augment_dataset, then shuffle + batch"),
                  ("element cached", "per element, pre-augmented cached tensors, shuffle + batch"))]),
        "",
        f"Live / cached on the trainer's path (how `convforge train` feeds the recipe) = **{ratio:.3f}** "
        f"(goal <= 1.10: {'met' if ratio <= 1.10 else 'NOT met'}); per element {ratio_element:.3f}. CPU per step "
        f"live / cached = {st['trainer live'][1] / st['trainer cached'][1]:.3f} on the trainer's path, "
        f"{st['element live'][1] / st['element cached'][1]:.3f} per element.",
        "",
        f"Load average (1 min) before / after: {load_before:.1f} / {load_after:.1f} on {all_threads} cores "
        "(a load above the core count means other processes took CPU: thread scaling cannot show then).",
        "",
        "Wall-clock rows need idle cores: with the load average above the core count, other processes decide how much CPU each variant gets, so thread scaling and the 'met'/'NOT met' labels above are noise there; the CPU-time columns (work per image, per step) are the load-independent comparison.",
        "",
        "Goals: " + "; ".join(
            f"{s} px scaling {sc:.2f}x ({'met' if sc >= 1.8 else 'NOT met'}; {sb:.2f}x placed after batching), "
            f"vs naive {vn:.2f}x ({'met' if vn >= 3 else 'NOT met'})"
            for s, sc, vn, sb in goals) + ".",
    ]
    write_section("augment", "Augmentation throughput and training overhead", "python benchmarks/augment.py", "\n".join(body))


if __name__ == "__main__":
    main()
