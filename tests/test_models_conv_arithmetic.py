"""Conv arithmetic vs the shapes and parameter counts Keras itself reports."""

import math

import keras
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.conv_arithmetic import (
    conv_multiplies,
    conv_params,
    depthwise_params,
    format_table,
    layer_table,
    output_shape,
    output_size,
    padded_output_size,
    same_padding,
)
from models.one_by_one import bottleneck_conv_model, cost_example, direct_conv_model

CONV = {1: keras.layers.Conv1D, 2: keras.layers.Conv2D, 3: keras.layers.Conv3D}
PAD = {1: keras.layers.ZeroPadding1D, 2: keras.layers.ZeroPadding2D, 3: keras.layers.ZeroPadding3D}
MAXPOOL = {1: keras.layers.MaxPooling1D, 2: keras.layers.MaxPooling2D, 3: keras.layers.MaxPooling3D}


def test_notes_examples():
    assert output_size(6, 3) == 4  # n - f + 1
    assert output_size(6, 3, p=1) == 6  # same padding keeps the size
    assert output_size(7, 3, p=0, s=2) == 3  # floor((7 - 3) / 2 + 1)
    assert output_size(8, 3, p=0, s=2) == 3  # floor(3.5 + 1)
    assert same_padding(5) == 2
    assert conv_params(3, 3, 10) == 3 * 3 * 3 * 10 + 10
    with pytest.raises(ValueError):
        output_size(2, 3)
    with pytest.raises(ValueError):
        same_padding(4)


@settings(max_examples=250, deadline=None)
@given(
    rank=st.integers(1, 3),
    n=st.integers(1, 40),
    f=st.integers(1, 7),
    p=st.integers(0, 3),
    s=st.integers(1, 4),
    nc_prev=st.integers(1, 16),
    nc=st.integers(1, 16),
    bias=st.booleans(),
)
def test_explicit_padding_matches_keras(rank, n, f, p, s, nc_prev, nc, bias):
    """ZeroPadding(p) then a valid conv: floor((n + 2p - f)/s + 1) and f^rank*nc_prev*nc + nc."""
    if n + 2 * p < f:
        return
    spatial = (n,) * rank
    pad = PAD[rank](p)
    conv = CONV[rank](nc, f, strides=s, padding="valid", use_bias=bias)
    padded = pad.compute_output_shape((None, *spatial, nc_prev))
    conv.build(padded)
    keras_shape = conv.compute_output_shape(padded)
    assert keras_shape[1:-1] == (output_size(n, f, p, s),) * rank
    assert keras_shape[-1] == nc
    assert conv.count_params() == conv_params(f, nc_prev, nc, rank, bias)


@settings(max_examples=250, deadline=None)
@given(
    rank=st.integers(1, 3),
    sizes=st.lists(st.integers(1, 30), min_size=3, max_size=3),
    f=st.integers(1, 6),
    s=st.integers(1, 3),
    padding=st.sampled_from(["valid", "same"]),
    kind=st.sampled_from(["conv", "pool", "depthwise"]),
    nc_prev=st.integers(1, 8),
    nc=st.integers(1, 8),
)
def test_keras_padding_modes_match(rank, sizes, f, s, padding, kind, nc_prev, nc):
    """'valid' and 'same' (ceil(n/s)) for conv, max pooling and depthwise conv, non-square inputs."""
    spatial = tuple(sizes[:rank])
    if padding == "valid" and min(spatial) < f:
        return
    if kind == "depthwise" and rank == 3:
        rank, spatial = 2, spatial[:2]
    in_shape = (None, *spatial, nc_prev)
    if kind == "conv":
        layer = CONV[rank](nc, f, strides=s, padding=padding)
        expected_params = conv_params(f, nc_prev, nc, rank)
        channels = nc
    elif kind == "pool":
        layer = MAXPOOL[rank](f, strides=s, padding=padding)
        expected_params, channels = 0, nc_prev
    else:
        depthwise = {1: keras.layers.DepthwiseConv1D, 2: keras.layers.DepthwiseConv2D}[rank]
        layer = depthwise(f, strides=s, padding=padding, depth_multiplier=nc)
        expected_params, channels = depthwise_params(f, nc_prev, nc, rank), nc_prev * nc
    layer.build(in_shape)
    assert layer.compute_output_shape(in_shape) == (None, *output_shape(spatial, f, s, padding), channels)
    assert layer.count_params() == expected_params
    if padding == "same" and f % 2 == 1:  # Keras' "same" is the notes' p = (f - 1) / 2 for odd f
        assert padded_output_size(spatial[0], f, s, "same") == output_size(spatial[0], f, same_padding(f), s)


def test_layer_table_totals_and_multiplies():
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same")(inputs)
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.MaxPooling2D(3, strides=2)(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(5)(x)
    model = keras.Model(inputs, outputs)
    rows = layer_table(model)
    assert sum(r.params for r in rows) == model.count_params()
    assert [r.output_shape for r in rows] == [tuple(layer.output.shape[1:]) for layer in model.layers[1:]]
    conv, depthwise = rows[0], rows[1]
    assert conv.multiplies == 16 * 16 * 8 * (3 * 3 * 3)
    assert depthwise.multiplies == 14 * 14 * 16 * 9
    assert rows[-1].multiplies == 6 * 6 * 16 * 5
    assert "total" in format_table(rows)


def test_one_by_one_cost_example():
    cost = cost_example()
    assert cost["direct"] == 28 * 28 * 32 * 5 * 5 * 192 == 120_422_400
    assert cost["bottleneck"] == 28 * 28 * 16 * 192 + 28 * 28 * 32 * 5 * 5 * 16 == 12_443_648
    direct, reduced = layer_table(direct_conv_model()), layer_table(bottleneck_conv_model())
    assert sum(r.multiplies for r in direct) == cost["direct"]
    assert sum(r.multiplies for r in reduced) == cost["bottleneck"]
    assert math.isclose(cost["ratio"], 120_422_400 / 12_443_648)
    assert conv_multiplies((28, 28), 16, 1, 192) == 2_408_448
