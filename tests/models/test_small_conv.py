"""SmallMapConv2D equals Conv2D (values and gradients) on every small map."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from cpc_tf.models import small_conv


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("kernel,stride", [(1, 1), (1, 2), (3, 1), (3, 2),
                                           (7, 2)])
def test_matches_conv2d_and_its_gradients(size, kernel, stride):
  rng = np.random.default_rng(size * 10 + kernel)
  inputs = tf.constant(rng.standard_normal((6, size, size, 5), np.float32))
  conv = keras.layers.Conv2D(4, kernel, strides=stride, padding="same",
                             use_bias=True)
  small = small_conv.SmallMapConv2D(4, kernel, strides=stride, padding="same",
                                    use_bias=True, max_pixels=64)
  conv.build(inputs.shape)
  small.build(inputs.shape)
  small.kernel.assign(conv.kernel)
  small.bias.assign(rng.standard_normal(4).astype(np.float32))
  conv.bias.assign(small.bias)

  def value_and_grads(layer):
    with tf.GradientTape() as tape:
      tape.watch(inputs)
      outputs = layer(inputs)
      loss = tf.reduce_sum(outputs * tf.sin(outputs))
    return [outputs, *tape.gradient(loss, [inputs, layer.kernel, layer.bias])]

  for expected, got in zip(value_and_grads(conv), value_and_grads(small)):
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_only_taps_that_touch_the_image_are_used():
  assert small_conv.live_taps(1, 3, 1) == [1]      # 1x1 map: the centre tap
  assert small_conv.live_taps(2, 3, 1) == [0, 1, 2]
  assert small_conv.live_taps(1, 3, 2) == [1]
  assert small_conv.live_taps(2, 3, 2) == [0, 1]   # SAME pads after, not before
  assert small_conv.same_padding(2, 3, 2) == (1, 0, 1)


def test_dense_index_unrolls_the_kernel():
  # 2x2 map, 3x3 kernel, stride 1: every output reads every input.
  index = small_conv.dense_kernel_index((2, 2), (3, 3), (1, 1))
  assert index.shape == (4, 4)
  assert index[0, 0] == 4          # input (0,0) -> output (0,0): centre tap
  assert index[3, 0] == 8          # input (1,1) -> output (0,0): tap (2,2)
  assert index[0, 3] == 0          # input (0,0) -> output (1,1): tap (0,0)
  # 4x4 map, stride 2: output (0,0) reads rows and columns 0..2 only.
  index = small_conv.dense_kernel_index((4, 4), (3, 3), (2, 2))
  assert index[3 * 4 + 0, 0] == 9  # input (3,0) is not read: the zero slot
  assert index[2 * 4 + 2, 0] == 8


def op_types(layer, shape):
  graph = tf.function(layer).get_concrete_function(
      tf.TensorSpec(shape, tf.float32)).graph
  return {op.type for op in graph.get_operations()}


def test_large_or_unknown_maps_use_conv2d():
  layer = small_conv.SmallMapConv2D(2, 3, padding="same", max_pixels=16)
  layer.build((None, None, None, 3))
  assert "Conv2D" in op_types(layer, [1, 5, 5, 3])        # 25 > 16 pixels
  assert "Conv2D" in op_types(layer, [1, None, None, 3])
  taps = op_types(layer, [1, 4, 4, 3])     # 16 pixels > 9 taps: windows
  assert {"MatMul", "ConcatV2"} <= taps and "Conv2D" not in taps
  dense = op_types(layer, [1, 2, 2, 3])    # 4 pixels <= 9 taps: unrolled
  assert {"MatMul", "GatherV2"} <= dense
  assert not {"Conv2D", "Pad", "Slice", "StridedSlice"} & dense


def test_refuses_what_it_does_not_implement():
  with pytest.raises(ValueError, match="padding='same'"):
    small_conv.SmallMapConv2D(2, 3, padding="valid")
  with pytest.raises(ValueError, match="dilation"):
    small_conv.SmallMapConv2D(2, 3, padding="same", dilation_rate=2)
