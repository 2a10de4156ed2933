"""Style transfer speed: optimisation steps/s, time to a fixed loss, fast-stylizer images/s.

    .venv/bin/python benchmarks/style.py [--budget SECONDS]

All measured side by side in one run (chelsea x Starry Night, default costs):

- optimisation steps/s (Adam) at 256 and 512 px (longest side);
- time to a fixed loss at 256 px: Adam and L-BFGS-B from the same content +
  noise start until J <= J(start) / 10 (each bounded by --budget);
- fast stylizer (Johnson transform net, default width) images/s at 256 and
  512 px, and its time per image against 150 Adam steps at the same size.

Speed does not depend on the net's training, so an untrained net is timed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import table, write_section  # noqa: E402


def steps_per_second(content, style, size: int, steps: int) -> float:
    from tasks.workflows.style_transfer import StyleSettings, optimise

    h = optimise(content, style, StyleSettings(steps=steps, size=size), verbose=0).history["seconds"]
    return (len(h) - 1) / (h[-1] - h[0])  # step 1 includes tracing: excluded


def time_to_loss(content, style, optimizer: str, budget: float, max_steps: int):
    """(seconds, steps) until J <= J(first step) / 10, or None if not reached in the budget."""
    from tasks.workflows.style_transfer import StyleSettings, optimise

    state = {"target": None, "hit": None}
    start = time.perf_counter()

    class Done(Exception):
        pass

    def on_step(step, costs, image):
        if state["target"] is None:
            state["target"] = costs["J"] / 10.0
        elif costs["J"] <= state["target"]:
            state["hit"] = (time.perf_counter() - start, step)
            raise Done
        if time.perf_counter() - start > budget:
            raise Done

    try:
        optimise(content, style, StyleSettings(steps=max_steps, size=256, optimizer=optimizer),
                 on_step=on_step, verbose=0)
    except Done:
        pass
    return state["hit"]


def stylizer_images_per_second(size: int, batch: int, seconds: float = 5.0) -> float:
    import numpy as np

    from models.transform_net import stylize, transform_net
    from tasks.workflows.fast_style import FastStyleSettings

    s = FastStyleSettings()
    net = transform_net(s.filters, s.residual_blocks)
    images = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    stylize(net, images)  # warm-up
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        stylize(net, images).numpy()
        count += batch
    return count / (time.perf_counter() - start)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=120.0, help="seconds per time-to-loss run (default 120)")
    args = parser.parse_args(argv)

    from tasks.workflows.style_transfer import load_image

    content, style = load_image("chelsea"), load_image("starry_night")
    load = os.getloadavg()[0]
    sps = {size: steps_per_second(content, style, size, steps) for size, steps in ((256, 21), (512, 6))}
    hits = {opt: time_to_loss(content, style, opt, args.budget, 300) for opt in ("adam", "lbfgs")}
    ips = {(size, batch): stylizer_images_per_second(size, batch) for size in (256, 512) for batch in (1, 4)}

    rows = [[f"optimisation (Adam) steps/s, {size} px", f"{v:.2f}"] for size, v in sps.items()]
    for opt, hit in hits.items():
        rows.append([f"time to J <= J0/10, {opt}, 256 px",
                     f"{hit[0]:.1f} s ({hit[1]} steps)" if hit else f"not reached in {args.budget:.0f} s"])
    rows += [[f"fast stylizer images/s, {size} px, batch {batch}", f"{v:.2f}"] for (size, batch), v in ips.items()]
    for size in (256, 512):
        optimised = 150 / sps[size]
        fast = 1 / ips[(size, 1)]
        rows.append([f"per image at {size} px: 150 Adam steps vs fast stylizer",
                     f"{optimised:.1f} s vs {fast * 1000:.0f} ms ({optimised / fast:.0f}x)"])
    notes = (f"\n\nLoad average at start: {load:.1f} on {os.cpu_count()} cores (shared machine: compare the ratios). "
             "L-BFGS steps are iterations (each may evaluate J more than once); J0 is J after the first step.")
    write_section("style", "Neural style transfer: optimisation vs fast stylizer",
                  "python benchmarks/style.py", table(["measure", "value"], rows) + notes)


if __name__ == "__main__":
    main()
