"""Convolution arithmetic: output sizes, parameter counts and multiply counts.

The formulas of the course notes, as functions that hold for 1D, 2D and 3D
(a size, filter or stride is an int or one int per spatial axis):

* output size   ``floor((n + 2p - f) / s + 1)``; "valid" is p = 0 and "same"
  is p = (f - 1) / 2, which for odd f gives ``ceil(n / s)`` (Keras' "same");
* parameters    ``f * f * nc_prev * nc + nc`` (weights plus one bias per filter);
* multiplies    ``(nh * nw * nc) * (f * f * nc_prev)``: every output value is
  one dot product of the filter with the input volume under it.

``layer_table(model)`` applies them to every layer of a built Keras model, so a
model's size and cost can be read layer by layer (``convforge info``).

Example:
    >>> output_size(6, 3)                       # 6x6 image, 3x3 filter, valid
    4
    >>> output_size(7, 3, p=1, s=2)
    4
    >>> conv_params(5, 192, 32)
    153632
    >>> conv_multiplies((28, 28), 32, 5, 192)   # the notes' Inception example
    120422400
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras


def _tuple(value, rank: int) -> tuple[int, ...]:
    """``3`` -> ``(3, 3)`` for rank 2; a sequence is returned as a tuple of ints."""
    if isinstance(value, (list, tuple)):
        if len(value) != rank:
            raise ValueError(f"expected {rank} values, one per spatial axis; received {value!r}")
        return tuple(int(v) for v in value)
    return (int(value),) * rank


def same_padding(f: int) -> int:
    """The padding p = (f - 1) / 2 that keeps the size at stride 1 (f odd)."""
    if f % 2 == 0:
        raise ValueError(f"'same' padding (f-1)/2 is a whole number only for odd f; received f={f}")
    return (f - 1) // 2


def output_size(n: int, f: int, p: int = 0, s: int = 1) -> int:
    """``floor((n + 2p - f) / s + 1)`` for one axis; raises if the filter does not fit."""
    if min(f, s) < 1 or n < 1 or p < 0:
        raise ValueError(f"need n>=1, f>=1, s>=1, p>=0; received n={n}, f={f}, p={p}, s={s}")
    if n + 2 * p < f:
        raise ValueError(f"a {f}-wide filter does not fit an input of {n} padded by {p}")
    return (n + 2 * p - f) // s + 1


def padded_output_size(n: int, f: int, s: int = 1, padding: str | int = "valid", dilation: int = 1) -> int:
    """Output size for Keras-style padding: "valid", "same"/"causal" (``ceil(n/s)``) or an int p."""
    f_eff = dilation * (f - 1) + 1
    if padding in ("same", "causal"):
        return math.ceil(n / s)
    if padding == "valid":
        return output_size(n, f_eff, 0, s)
    if isinstance(padding, int):
        return output_size(n, f_eff, padding, s)
    raise ValueError(f"padding must be 'valid', 'same' or an int; received {padding!r}")


def output_shape(spatial, f, s=1, padding: str | int = "valid", dilation=1) -> tuple[int, ...]:
    """Spatial output shape for any rank: ``output_shape((28, 28), 5, 1, "same") == (28, 28)``."""
    spatial = tuple(int(n) for n in spatial)
    rank = len(spatial)
    fs, ss, ds = _tuple(f, rank), _tuple(s, rank), _tuple(dilation, rank)
    return tuple(padded_output_size(n, fi, si, padding, di) for n, fi, si, di in zip(spatial, fs, ss, ds, strict=True))


def conv_params(f, nc_prev: int, nc: int, rank: int = 2, bias: bool = True, groups: int = 1) -> int:
    """``f^rank * nc_prev/groups * nc + nc``: the weights and biases of a convolution."""
    if nc_prev % groups or nc % groups:
        raise ValueError(f"groups={groups} must divide nc_prev={nc_prev} and nc={nc}")
    return math.prod(_tuple(f, rank)) * (nc_prev // groups) * nc + (nc if bias else 0)


def conv_multiplies(out_spatial, nc: int, f, nc_prev: int, groups: int = 1) -> int:
    """``(prod(out) * nc) * (f^rank * nc_prev/groups)``: one filter-volume dot product per output value."""
    out_spatial = tuple(out_spatial)
    return math.prod(out_spatial) * nc * math.prod(_tuple(f, len(out_spatial))) * (nc_prev // groups)


def depthwise_params(f, nc_prev: int, multiplier: int = 1, rank: int = 2, bias: bool = True) -> int:
    """Depthwise conv: one ``f^rank`` filter per input channel (times ``multiplier``)."""
    nc = nc_prev * multiplier
    return math.prod(_tuple(f, rank)) * nc + (nc if bias else 0)


def depthwise_multiplies(out_spatial, f, nc_prev: int, multiplier: int = 1) -> int:
    """Depthwise conv: ``prod(out) * nc_prev * multiplier * f^rank``."""
    out_spatial = tuple(out_spatial)
    return math.prod(out_spatial) * nc_prev * multiplier * math.prod(_tuple(f, len(out_spatial)))


def dense_params(n_in: int, n_out: int, bias: bool = True) -> int:
    """A fully connected layer: ``n_in * n_out + n_out``."""
    return n_in * n_out + (n_out if bias else 0)


@dataclass
class LayerRow:
    """One line of ``layer_table``: what a layer outputs, holds and costs (per example)."""

    name: str
    kind: str
    output_shape: tuple
    params: int
    multiplies: int


def _shape(tensor) -> tuple:
    return tuple(None if d is None else int(d) for d in tensor.shape)


def _io(layer):
    """(input shapes, output shape) of a layer's first call, batch axis dropped."""
    node_in = layer.input
    ins = [_shape(t)[1:] for t in (node_in if isinstance(node_in, (list, tuple)) else [node_in])]
    out = layer.output
    if isinstance(out, (list, tuple, dict)):
        out = list(out.values())[0] if isinstance(out, dict) else out[0]
    return ins, _shape(out)[1:]


def _conv_row(layer, in_shape: tuple) -> tuple[tuple, int, int]:
    """Formula output shape, params and multiplies of a Conv1D/2D/3D (channels last)."""
    cfg = layer.get_config()
    rank = len(in_shape) - 1
    f, nc_prev, nc = _tuple(cfg["kernel_size"], rank), in_shape[-1], cfg["filters"]
    groups = cfg.get("groups", 1)
    out = output_shape(in_shape[:-1], f, cfg["strides"], cfg["padding"], cfg["dilation_rate"])
    params = conv_params(f, nc_prev, nc, rank, cfg["use_bias"], groups)
    return out + (nc,), params, conv_multiplies(out, nc, f, nc_prev, groups)


def _depthwise_row(layer, in_shape: tuple) -> tuple[tuple, int, int]:
    cfg = layer.get_config()
    rank = len(in_shape) - 1
    f, mult, nc_prev = _tuple(cfg["kernel_size"], rank), cfg["depth_multiplier"], in_shape[-1]
    out = output_shape(in_shape[:-1], f, cfg["strides"], cfg["padding"], cfg["dilation_rate"])
    params = depthwise_params(f, nc_prev, mult, rank, cfg["use_bias"])
    return out + (nc_prev * mult,), params, depthwise_multiplies(out, f, nc_prev, mult)


def _pool_row(layer, in_shape: tuple) -> tuple[tuple, int, int]:
    cfg = layer.get_config()
    out = output_shape(in_shape[:-1], cfg["pool_size"], cfg["strides"] or cfg["pool_size"], cfg["padding"])
    return out + (in_shape[-1],), 0, 0


def _dense_row(layer, in_shape: tuple) -> tuple[tuple, int, int]:
    units = layer.get_config()["units"]
    lead = math.prod(in_shape[:-1])
    return in_shape[:-1] + (units,), dense_params(in_shape[-1], units, layer.use_bias), lead * in_shape[-1] * units


_FORMULAS = {
    "Conv1D": _conv_row,
    "Conv2D": _conv_row,
    "Conv3D": _conv_row,
    "DepthwiseConv1D": _depthwise_row,
    "DepthwiseConv2D": _depthwise_row,
    "MaxPooling1D": _pool_row,
    "MaxPooling2D": _pool_row,
    "MaxPooling3D": _pool_row,
    "AveragePooling1D": _pool_row,
    "AveragePooling2D": _pool_row,
    "AveragePooling3D": _pool_row,
    "Dense": _dense_row,
}


def layer_row(layer) -> LayerRow:
    """The arithmetic of one built layer; shapes and params from the formulas where one applies.

    Raises ``AssertionError`` if a formula disagrees with what Keras built: the
    table is a check of the arithmetic, not a copy of Keras' numbers.
    """
    ins, built_out = _io(layer)
    kind = type(layer).__name__
    if kind in _FORMULAS and len(ins) == 1:
        out, params, mults = _FORMULAS[kind](layer, ins[0])
        assert out == built_out, f"{layer.name}: formula shape {out} != Keras shape {built_out}"
        assert params == layer.count_params(), f"{layer.name}: formula params {params} != {layer.count_params()}"
        return LayerRow(layer.name, kind, out, params, mults)
    return LayerRow(layer.name, kind, built_out, layer.count_params(), 0)


def layer_table(model: keras.Model) -> list[LayerRow]:
    """Rows for every layer of ``model`` (nested models expanded), in graph order.

    Multiplies count the weight multiplications (multiply-accumulates) of one
    example; pooling, normalisation, activations and additions count 0.
    """
    rows: list[LayerRow] = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            rows.extend(layer_table(layer))
        elif not isinstance(layer, keras.layers.InputLayer):
            rows.append(layer_row(layer))
    return rows


def format_table(rows: list[LayerRow]) -> str:
    """A fixed-width text table with a totals line (thousands separated)."""
    header = ("layer", "type", "output shape", "params", "multiplies")
    lines = [(r.name, r.kind, "x".join(str(d) for d in r.output_shape), f"{r.params:,}", f"{r.multiplies:,}") for r in rows]
    total = ("total", "", "", f"{sum(r.params for r in rows):,}", f"{sum(r.multiplies for r in rows):,}")
    widths = [max(len(str(x[i])) for x in [header, *lines, total]) for i in range(5)]

    def fmt(cells):
        return "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    rule = "-" * len(fmt(header))
    return "\n".join([fmt(header), rule, *map(fmt, lines), rule, fmt(total)])
