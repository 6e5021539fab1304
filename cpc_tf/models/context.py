"""Context network g: the masked "pixelCNN" of Appendix A.2.

Each residual block sees the row above only through a one-row pad on top and a
2x1 VALID convolution, so the context at row i depends only on latents in
rows <= i (any column).
"""

import keras
from keras import layers


class MaskedResidualBlock(keras.layers.Layer):
  """cres -> relu(cres + conv1x1(relu(conv2x1(pad_top(conv1x3(relu(
  conv1x1))))))."""

  def __init__(self, hidden_dim: int, **kwargs):
    super().__init__(**kwargs)
    self.hidden_dim = hidden_dim
    self.conv_in = layers.Conv2D(hidden_dim, (1, 1), name="in")
    self.conv_row = layers.Conv2D(hidden_dim, (1, 3), padding="same",
                                  name="row")
    self.pad_top = layers.ZeroPadding2D(((1, 0), (0, 0)), name="pad_top")
    self.conv_above = layers.Conv2D(hidden_dim, (2, 1), padding="valid",
                                    name="above")
    self.conv_out = None

  def build(self, input_shape):
    input_shape = tuple(input_shape)
    hidden = input_shape[:-1] + (self.hidden_dim,)
    # Built lazily, so it takes the block's dtype policy explicitly.
    self.conv_out = layers.Conv2D(input_shape[-1], (1, 1), name="out",
                                  dtype=self.dtype_policy)
    self.conv_in.build(input_shape)
    self.conv_row.build(hidden)
    self.conv_above.build(self.pad_top.compute_output_shape(hidden))
    self.conv_out.build(hidden)

  def call(self, cres):
    c = keras.ops.relu(self.conv_in(cres))
    c = self.pad_top(self.conv_row(c))
    c = keras.ops.relu(self.conv_above(c))
    c = self.conv_out(c)
    return keras.ops.relu(cres + c)

  def get_config(self):
    return {**super().get_config(), "hidden_dim": self.hidden_dim}


class ContextNetwork(keras.Sequential):
  """[B, H, W, D] latents -> [B, H, W, D] context."""

  def __init__(self, hidden_dim: int = 256, num_blocks: int = 5, name=None):
    super().__init__(
        [MaskedResidualBlock(hidden_dim, name=f"block{b + 1}")
         for b in range(num_blocks)], name=name)
