"""Convolution as one matrix product on small feature maps.

With 8x8 patches every stage after the stem runs on 4x4, 2x2 or 1x1 maps.
There TF's CPU convolution kernels, and above all their gradients, run far
below the CPU's peak (bench/small_map_conv.py), and a 3x3 SAME convolution
on a 1x1 map only ever reads its centre tap. SmallMapConv2D keeps Conv2D's
variables (checkpoints are interchangeable) and, on maps of at most
`max_pixels` pixels, computes the same result as one matrix product:

- dense: when the map has no more pixels than the kernel has live taps (2x2
  or 1x1 maps under a 3x3 kernel), the kernel is unrolled into the
  [H*W*C_in, oh*ow*C_out] matrix of the whole map and the flattened map is
  multiplied by it: nothing is sliced or padded.
- taps: otherwise, the windows read by the taps that can touch the image are
  sliced, concatenated along channels and multiplied by those taps' weights.
"""

from typing import List, Tuple

import keras
import numpy as np
import tensorflow as tf


def same_padding(size: int, kernel: int, stride: int) -> Tuple[int, int, int]:
  """(output size, padding before, padding after) of TF's SAME padding."""
  out = -(-size // stride)
  total = max((out - 1) * stride + kernel - size, 0)
  return out, total // 2, total - total // 2


def tap_of_input(size: int, kernel: int, stride: int) -> np.ndarray:
  """[size, out]: the kernel offset through which output o reads input i,
  or -1 where it does not read it."""
  out, before, _ = same_padding(size, kernel, stride)
  taps = np.full((size, out), -1)
  for o in range(out):
    for tap in range(kernel):
      i = o * stride + tap - before
      if 0 <= i < size:
        taps[i, o] = tap
  return taps


def live_taps(size: int, kernel: int, stride: int) -> List[int]:
  """Kernel offsets that read at least one real (not padded) input pixel."""
  read = tap_of_input(size, kernel, stride)
  return [tap for tap in range(kernel) if np.any(read == tap)]


def dense_kernel_index(shape: Tuple[int, int], kernel: Tuple[int, int],
                       strides: Tuple[int, int]) -> np.ndarray:
  """[H*W, oh*ow] index into the kh*kw flattened taps (kh*kw: a zero slot)
  that unrolls a SAME convolution on an HxW map into one matrix."""
  rows = tap_of_input(shape[0], kernel[0], strides[0])[:, None, :, None]
  cols = tap_of_input(shape[1], kernel[1], strides[1])[None, :, None, :]
  index = np.where((rows >= 0) & (cols >= 0), rows * kernel[1] + cols,
                   kernel[0] * kernel[1])            # [H, W, oh, ow]
  return index.reshape(shape[0] * shape[1], -1)


def _window(images: tf.Tensor, row: int, col: int, size: Tuple[int, int],
            strides: Tuple[int, int]) -> tf.Tensor:
  """The [N, oh, ow, C] pixels read by a kernel tap whose first pixel is
  (row, col) of `images`, with the cheapest op that does it: the tensor
  itself, a slice, or a strided slice (whose gradient, StridedSliceGrad, is
  slow on CPU)."""
  (out_h, out_w), (stride_h, stride_w) = size, strides
  if (stride_h > 1 and out_h > 1) or (stride_w > 1 and out_w > 1):
    return images[:, row:row + (out_h - 1) * stride_h + 1:stride_h,
                  col:col + (out_w - 1) * stride_w + 1:stride_w]
  if (row, col) == (0, 0) and tuple(images.shape[1:3]) == (out_h, out_w):
    return images
  return tf.slice(images, [0, row, col, 0], [-1, out_h, out_w, -1])


class SmallMapConv2D(keras.layers.Conv2D):
  """Conv2D (SAME padding, channels last) that turns into a matrix product
  on maps of at most `max_pixels` pixels; larger or unknown sizes use
  Conv2D's own kernel, and so does every size with max_pixels 0 (which is
  faster depends on the CPU: bench/pretrain_step.py compares the two)."""

  def __init__(self, *args, max_pixels: int = 16, **kwargs):
    super().__init__(*args, **kwargs)
    if self.padding != "same" or self.data_format != "channels_last":
      raise ValueError("SmallMapConv2D needs padding='same', channels_last")
    if self.dilation_rate != (1, 1) or self.groups != 1:
      raise ValueError("SmallMapConv2D has no dilation or groups")
    self.max_pixels = max_pixels

  def call(self, inputs):
    height, width = inputs.shape[1], inputs.shape[2]
    if height is None or width is None or height * width > self.max_pixels:
      return super().call(inputs)
    live = (len(live_taps(height, self.kernel_size[0], self.strides[0]))
            * len(live_taps(width, self.kernel_size[1], self.strides[1])))
    if height * width <= live:
      outputs = self._dense_matmul(inputs)
    else:
      outputs = self._taps_matmul(inputs)
    if self.use_bias:
      outputs = outputs + tf.convert_to_tensor(self.bias)
    if self.activation is not None:
      outputs = self.activation(outputs)
    return outputs

  def _dense_matmul(self, inputs):
    """[N, H, W, C_in] -> [N, oh, ow, C_out] through the unrolled kernel."""
    height, width, channels = inputs.shape[1:]
    index = dense_kernel_index((height, width), self.kernel_size, self.strides)
    kernel = tf.convert_to_tensor(self.kernel)      # [kh, kw, C_in, C_out]
    taps = tf.reshape(kernel, [-1, channels, self.filters])
    zero_slot = tf.zeros([1, channels, self.filters], taps.dtype)
    taps = tf.concat([taps, zero_slot], axis=0)
    unrolled = tf.transpose(tf.gather(taps, index), [0, 2, 1, 3])
    unrolled = tf.reshape(unrolled, [height * width * channels, -1])
    outputs = tf.matmul(tf.reshape(inputs, [-1, unrolled.shape[0]]), unrolled)
    out_h = same_padding(height, self.kernel_size[0], self.strides[0])[0]
    out_w = same_padding(width, self.kernel_size[1], self.strides[1])[0]
    return tf.reshape(outputs, [-1, out_h, out_w, self.filters])

  def _taps_matmul(self, inputs):
    """[N, H, W, C_in] -> [N, oh, ow, C_out] over the windows of live taps."""
    height, width = inputs.shape[1], inputs.shape[2]
    (kernel_h, kernel_w), (stride_h, stride_w) = self.kernel_size, self.strides
    out_h, top, bottom = same_padding(height, kernel_h, stride_h)
    out_w, left, right = same_padding(width, kernel_w, stride_w)
    padded = None
    kernel = tf.convert_to_tensor(self.kernel)      # [kh, kw, C_in, C_out]
    columns, weights = [], []
    for row in live_taps(height, kernel_h, stride_h):
      for col in live_taps(width, kernel_w, stride_w):
        first_row, first_col = row - top, col - left
        inside = (first_row >= 0 and first_col >= 0
                  and first_row + (out_h - 1) * stride_h < height
                  and first_col + (out_w - 1) * stride_w < width)
        if inside:      # reads no padding: e.g. the centre tap on a 1x1 map
          window = _window(inputs, first_row, first_col, (out_h, out_w),
                           self.strides)
        else:
          if padded is None:
            padded = tf.pad(inputs, [[0, 0], [top, bottom], [left, right],
                                     [0, 0]])
          window = _window(padded, row, col, (out_h, out_w), self.strides)
        columns.append(window)
        weights.append(kernel[row, col])
    patches = (columns[0] if len(columns) == 1       # [N, oh, ow, taps*C_in]
               else tf.concat(columns, axis=-1))
    flat = tf.reshape(patches, [-1, patches.shape[-1]])
    outputs = tf.matmul(flat, tf.concat(weights, axis=0))   # [N*oh*ow, C_out]
    return tf.reshape(outputs, [-1, out_h, out_w, self.filters])

  def get_config(self):
    return {**super().get_config(), "max_pixels": self.max_pixels}
