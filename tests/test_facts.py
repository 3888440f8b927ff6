"""tweak/facts.py against the shared vocabulary: every layer the classifier counts is one the tweaks know,
with the arguments its role gives it, and the shape check computes only the layers whose arithmetic it
knows (a transposed convolution grows its input, a ConvLSTM2D has a time axis)."""

from __future__ import annotations

import pytest

from mlops.classify import Family, classify_source
from mlops.classify.rules import KERAS_FAMILIES
from mlops.domain import Kind
from mlops.vocabulary import KERAS_LAYERS, Role
from tweak.codemods import REGISTRY, TweakNotApplicable
from tweak.facts import LAYER_KINDS, check_variant, model_facts


def sequential(*layers: str, shape: tuple[int, ...] = (8, 8, 1)) -> str:
    lines = "".join(f"    layers.{layer},\n" for layer in layers)
    return (
        "from keras import layers, models\n"
        "model = models.Sequential([\n"
        f"    layers.Input(shape={shape}),\n"
        f"{lines}"
        "    layers.Flatten(),\n"
        '    layers.Dense(10, activation="softmax"),\n'
        "])\n"
    )


def test_every_layer_that_makes_a_cnn_is_a_layer_the_tweaks_know() -> None:
    convolutional = {name for name, family in KERAS_FAMILIES.items() if family is Family.CONVOLUTIONAL}
    assert convolutional <= set(LAYER_KINDS)
    assert {LAYER_KINDS[name] for name in convolutional} == {"conv", "depthwise_conv", "recurrent_conv"}


# The names the classifier called convolutions and tweak/facts did not know, and what they are now.
FORMERLY_UNKNOWN = [
    ("Conv1DTranspose(8, 3)", "conv", 8, (3,)),
    ("Convolution2DTranspose(8, 3)", "conv", 8, (3, 3)),
    ("Convolution3DTranspose(8, 3)", "conv", 8, (3, 3, 3)),
    ("Deconvolution2D(8, 3, 3)", "conv", 8, (3, 3)),
    ("Deconvolution3D(8, 3)", "conv", 8, (3, 3, 3)),
    ("SeparableConvolution1D(8, 5)", "conv", 8, (5,)),
    ("SeparableConvolution2D(8, 3, 3)", "conv", 8, (3, 3)),
    ("AtrousConvolution1D(8, 3)", "conv", 8, (3,)),
    ("AtrousConvolution2D(8, 3, 3)", "conv", 8, (3, 3)),
    ("ConvLSTM1D(8, 3)", "recurrent_conv", 8, (3,)),
    ("ConvLSTM2D(8, (3, 3))", "recurrent_conv", 8, (3, 3)),
    ("ConvLSTM3D(8, 3)", "recurrent_conv", 8, (3, 3, 3)),
    ("DepthwiseConv1D(5)", "depthwise_conv", None, (5,)),
    ("DepthwiseConv2D(kernel_size=3)", "depthwise_conv", None, (3, 3)),  # was a "conv" of 3 filters
]


@pytest.mark.parametrize("call,kind,filters,kernel", FORMERLY_UNKNOWN, ids=lambda v: str(v).split("(")[0])
def test_a_convolution_to_the_classifier_is_one_to_the_tweaks(
    call: str, kind: str, filters: int | None, kernel: tuple[int, ...]
) -> None:
    code = f"from keras import layers\nm = layers.{call}\n"
    assert classify_source(code).kind is Kind.CNN
    [layer] = model_facts(code).layers
    assert (layer.kind, layer.filters, layer.kernel) == (kind, filters, kernel)
    assert layer.role is KERAS_LAYERS[call.split("(")[0]]


def test_a_dense_layer_without_units_is_not_one_the_tweaks_resize() -> None:
    code = 'from keras import layers\nm = layers.EinsumDense("ab,bc->ac", output_shape=64)\n'
    assert classify_source(code).kind is Kind.ANN
    assert KERAS_LAYERS["EinsumDense"] is Role.EINSUM_DENSE
    assert model_facts(code).layers == []


def test_keras_3_aliases_of_pooling_and_dropout() -> None:
    facts = model_facts(
        sequential("AvgPool2D()", "SpatialDropout2D(0.1)", "GlobalMaxPool2D()", "AlphaDropout(0.1)")
    )
    assert [layer.kind for layer in facts.layers] == [
        "pool",
        "dropout",
        "global_pool",
        "dropout",
        "flatten",
        "dense",
    ]


def test_a_dense_layer_followed_by_any_dropout_gets_no_other() -> None:
    source = sequential("Dense(32)", "GaussianDropout(0.2)", shape=(16,))
    with pytest.raises(TweakNotApplicable, match="no hidden Dense layer without dropout"):
        REGISTRY["add_dropout"](rate=0.5).apply(source)


def test_depthwise_kernels_are_not_scaled_as_filters() -> None:
    source = sequential("Conv2D(4, 3)", "DepthwiseConv2D(3)")
    after = REGISTRY["scale_filters"](factor=2).apply(source)
    assert "Conv2D(8, 3)" in after and "DepthwiseConv2D(3)" in after


# -- the shape check ----------------------------------------------------------------------------------


def test_a_transposed_convolution_grows_its_input_so_the_check_stops_there() -> None:
    # 8 -> conv 6 -> pool 3 -> transposed 7 -> pool 3 -> conv 1: Keras builds it. Read as a convolution (or
    # skipped), the transposed layer would leave 1 or 0 and a good variant would be rejected.
    good = sequential(
        "Conv2D(8, 3)", "MaxPooling2D()", "Conv2DTranspose(8, 3, strides=2)", "MaxPooling2D()", "Conv2D(8, 3)"
    )
    assert check_variant(good) is None
    bad = sequential(
        "Conv2D(8, 3)", "MaxPooling2D()", "MaxPooling2D()", "MaxPooling2D()", "Conv2DTranspose(8, 3)"
    )
    assert "MaxPooling2D at line 7" in (check_variant(bad) or "")  # what comes before it is still checked


def test_a_recurrent_convolution_has_a_time_axis_that_is_not_a_size() -> None:
    # (time, rows, cols, channels): reading the time axis as the rows made 4 -> 2 -> 1 -> 0.
    clips = sequential(
        'ConvLSTM2D(8, (3, 3), padding="same")',
        "MaxPooling2D()",
        "MaxPooling2D()",
        "MaxPooling2D()",
        shape=(4, 16, 16, 1),
    )
    assert check_variant(clips) is None
    frames = sequential(
        "TimeDistributed(layers.Conv2D(8, 3))",
        "TimeDistributed(layers.MaxPooling2D())",
        "TimeDistributed(layers.MaxPooling2D())",
        'ConvLSTM2D(8, (3, 3), padding="same")',
        shape=(4, 16, 16, 1),
    )
    assert check_variant(frames) is None


def test_a_depthwise_convolution_shrinks_its_input_like_a_convolution() -> None:
    assert check_variant(sequential("DepthwiseConv2D(5)", "MaxPooling2D()", "MaxPooling2D()")) is None
    too_big = check_variant(sequential("DepthwiseConv2D(9)"))
    assert (
        too_big is not None and "DepthwiseConv2D at line 4 needs at least a 9x9 input but gets 8x8" in too_big
    )
    pooled = check_variant(
        sequential("DepthwiseConv2D(5)", "MaxPooling2D()", "MaxPooling2D()", "MaxPooling2D()")
    )
    assert pooled is not None and "MaxPooling2D at line 7" in pooled
