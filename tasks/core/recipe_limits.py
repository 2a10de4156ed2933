"""Recipe values' sizes and ranges, checked once before anything runs.

``check_size`` bounds any value a recipe can hold (free-form mappings such as
``model.options`` included): at most ``MAX_NODES`` entries counted as if YAML
aliases were expanded, ``MAX_DEPTH`` levels of nesting and ``MAX_STRING``
characters per string. The walk stops at the first excess, so a YAML alias
bomb (a few lines claiming 10^9 entries) is refused in milliseconds instead of
being expanded by a later copy, hash or error message.

``check_ranges`` then checks every known value's range (epochs at least 1,
fractions below 1, a finite positive learning rate, an image size a machine
can hold, ...) and that a ``data.service`` dispatcher answers. Each problem
is a ``UserError``: one line naming the key, what it needs and (cut short)
what it got.

Example:
    >>> check_ranges(load_recipe("fashion_mnist_lenet5"))   # silent when the recipe is sound
"""

from __future__ import annotations

import math
import socket
from collections.abc import Callable
from typing import Any

from tasks.core.errors import UserError, quote

MAX_NODES = 10_000
MAX_DEPTH = 12
MAX_STRING = 4_096
MAX_RECIPE_BYTES = 1_000_000
MAX_IMAGE_SIDE = 4_096
MAX_IMAGE_PIXELS = 2_048 * 2_048  # per image, before the batch multiplies it
SERVICE_TIMEOUT_S = 3.0


class _TooLarge(Exception):
    def __init__(self, where: str, why: str):
        super().__init__(where, why)
        self.where, self.why = where, why


def check_size(value: Any, name: str) -> None:
    """``UserError`` if ``value`` (named ``name`` in the message) is over the size, depth or string limits."""
    budget = [MAX_NODES]

    def walk(node: Any, where: str, depth: int) -> None:
        budget[0] -= 1
        if budget[0] < 0:
            raise _TooLarge(where, f"has more than {MAX_NODES:,} entries once YAML aliases are expanded (an alias bomb?)")
        if depth > MAX_DEPTH:
            raise _TooLarge(where, f"is nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, str) and len(node) > MAX_STRING:
            raise _TooLarge(where, f"is a string of {len(node):,} characters (at most {MAX_STRING:,})")
        if isinstance(node, dict):
            for key, item in node.items():
                walk(key, where, depth + 1)
                walk(item, f"{where}.{str(key)[:40]}", depth + 1)
        elif isinstance(node, (list, tuple)):
            for i, item in enumerate(node):
                walk(item, f"{where}[{i}]", depth + 1)

    try:
        walk(value, name, 0)
    except _TooLarge as err:
        raise UserError(f"recipe value {err.where} {err.why}; shorten it") from None
    except RecursionError:
        raise UserError(f"recipe value {name} is nested too deeply; shorten it") from None


# -- ranges ---------------------------------------------------------------------------
Rule = Callable[[Any], str | None]  # value -> what it must be, or None when it is fine


def number(lo: float | None = None, hi: float | None = None, integer: bool = False, lo_open: bool = False,
           hi_open: bool = False, optional: bool = False) -> Rule:
    """A number in [lo, hi] (``*_open``: that end excluded); ``optional``: None allowed too."""
    low = "" if lo is None else f"{'>' if lo_open else '>='} {lo:,}"
    high = "" if hi is None else f"{'<' if hi_open else '<='} {hi:,}"
    need = f"{'a whole number' if integer else 'a finite number'} {' and '.join(p for p in (low, high) if p)}".strip()
    need += " (or null)" if optional else ""

    def rule(v):
        if v is None:
            return None if optional else f"must be {need}"
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
            return f"must be {need}"
        if not math.isfinite(v):
            return f"must be {need}"
        if lo is not None and (v <= lo if lo_open else v < lo):
            return f"must be {need}"
        if hi is not None and (v >= hi if hi_open else v > hi):
            return f"must be {need}"
        return None

    return rule


def text(optional: bool = False) -> Rule:
    """A non-empty string (``optional``: or None)."""
    def rule(v):
        if v is None and optional:
            return None
        return None if isinstance(v, str) and v.strip() else "must be a non-empty string"
    return rule


def one_of(*choices) -> Rule:
    return lambda v: None if v in choices else f"must be one of {', '.join(map(str, choices))}"


def image_size(v) -> str | None:
    need = (f"must be null or [height, width], two whole numbers from 1 to {MAX_IMAGE_SIDE} "
            f"with height x width at most {MAX_IMAGE_PIXELS:,}")
    if v is None:
        return None
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        return need
    if any(isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= MAX_IMAGE_SIDE for s in v):
        return need
    return need if v[0] * v[1] > MAX_IMAGE_PIXELS else None


FRACTION = number(0, 1, hi_open=True)
POSITIVE_INT = number(1, integer=True)
UNIT = number(0, 1)

RULES: dict[str, Rule] = {
    "seed": number(0, 2**32 - 1, integer=True),
    "data.dataset": text(),
    "data.val_fraction": FRACTION,
    "data.test_fraction": FRACTION,
    "data.train_limit": number(1, integer=True, optional=True),
    "data.test_limit": number(1, integer=True, optional=True),
    "data.image_size": image_size,
    "data.channels": lambda v: None if v in (None, 1, 3) else "must be 1, 3 or null (keep the dataset's own)",
    "data.shuffle_buffer": number(0, 10_000_000, integer=True),
    "model.name": text(),
    "train.epochs": number(1, 100_000, integer=True),
    "train.batch_size": number(1, 65_536, integer=True),
    "train.learning_rate": number(0, lo_open=True),
    "train.weight_decay": number(0),
    "train.early_stopping": number(0, integer=True),
    "train.backup_interval_s": number(0),
    "train.steps_per_epoch": number(1, integer=True, optional=True),
    "export.dir": text(),
    "export.name": text(optional=True),
    "mlflow.experiment": text(),
    # task sections (checked where the task has them)
    "scenes.train": POSITIVE_INT,
    "scenes.val": number(0, integer=True),
    "scenes.test": POSITIVE_INT,
    "detection.anchors": number(1, 32, integer=True),
    "detection.score_threshold": UNIT,
    "detection.iou_threshold": UNIT,
    "detection.eval_score_threshold": UNIT,
    "detection.max_detections": number(1, 10_000, integer=True),
    "localisation.pc_threshold": UNIT,
    "faces.margin": number(0),
    "faces.p": number(2, integer=True),
    "faces.k": number(2, integer=True),
    "faces.unseen_fraction": FRACTION,
    "faces.max_pairs": POSITIVE_INT,
    "faces.one_shot_draws": POSITIVE_INT,
    "evaluation.crop_fraction": number(0, 1, lo_open=True),
}


def check_ranges(recipe: dict, services: bool = True) -> None:
    """``UserError`` for the first value out of its range; then (``services``) ``data.service``'s dispatcher must answer."""
    for key, rule in RULES.items():
        node: Any = recipe
        for part in key.split("."):
            node = node.get(part, _MISSING) if isinstance(node, dict) else _MISSING
        if node is _MISSING:
            continue
        problem = rule(node)
        if problem:
            raise UserError(f"recipe key {key!r} {problem}; received {quote(node)}")
    data = recipe.get("data", {})
    if data.get("val_fraction", 0) + data.get("test_fraction", 0) >= 1:
        raise UserError(f"data.val_fraction + data.test_fraction must be below 1 (something left to train on); "
                        f"received {data['val_fraction']:g} + {data.get('test_fraction', 0):g}")
    if services and data.get("service"):
        check_dispatcher(data["service"])


_MISSING = object()


def check_dispatcher(service: Any, timeout: float = SERVICE_TIMEOUT_S) -> None:
    """``UserError`` unless something accepts TCP connections at ``data.service.dispatcher`` within ``timeout``."""
    address = service.get("dispatcher") if isinstance(service, dict) else None
    if not isinstance(address, str) or ":" not in address:
        raise UserError(f"data.service.dispatcher must be an address like grpc://host:5050; received {quote(address)}")
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"data.service.dispatcher {quote(address)} needs a port (1-65535), e.g. grpc://host:5050")
    try:
        with socket.create_connection((host.strip("[]") or "localhost", int(port)), timeout=timeout):
            pass
    except OSError as err:
        raise UserError(f"data.service.dispatcher {address[:100]} does not answer within {timeout:g} s ({err.strerror or err}); "
                        "start one with `convforge data-service dispatcher` or remove data.service") from None
