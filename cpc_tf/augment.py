"""Per-patch augmentation (Section 4.1, "RC" and "PA"): every patch of every
image gets its own random draw.

Works on a flat batch of patches [N, p, p, 3] in [0, 1]; the pipeline
reshapes [B, G, G, p, p, 3] to it and back.
"""

import dataclasses

import keras
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class PatchAugment:
  """Which per-patch augmentations run; each is a flag of run_pretrain.py."""
  jitter: int = 0            # pixels of random crop inside the patch
  flip: bool = False         # random horizontal flip
  color_drop: float = 0.0    # probability of dropping two of three channels
  geometric: bool = False    # PA: shear, rotation, translation (AutoAugment)
  elastic: bool = False      # PA: random elastic deformation
  color: bool = False        # PA: brightness, contrast, saturation, hue, grey

  @property
  def active(self) -> bool:
    return any(dataclasses.astuple(self))


def spatial_jitter(patches: tf.Tensor, jitter: int) -> tf.Tensor:
  """A random (p - jitter)^2 crop of each patch, resized back to p x p."""
  n, size = tf.shape(patches)[0], patches.shape[1]
  keep = size - jitter
  top_left = tf.random.uniform([n, 2], 0, jitter + 1, dtype=tf.int32)
  # crop_and_resize boxes hold the first and last pixel rows/columns kept,
  # as fractions of size - 1.
  corners = tf.concat([top_left, top_left + keep - 1], axis=1)
  boxes = tf.cast(corners, tf.float32) / (size - 1)
  return tf.image.crop_and_resize(patches, boxes, tf.range(n), [size, size])


def random_flip(patches: tf.Tensor) -> tf.Tensor:
  flip = tf.random.uniform([tf.shape(patches)[0], 1, 1, 1]) < 0.5
  return tf.where(flip, tf.reverse(patches, axis=[2]), patches)


def color_drop(patches: tf.Tensor, probability: float) -> tf.Tensor:
  """Keeps one random channel of a patch and drops the other two (Doersch et
  al. 2015): a dropped channel becomes mid-grey 0.5 plus Gaussian noise with
  1/100 of the kept channel's standard deviation, so it carries no image."""
  n = tf.shape(patches)[0]
  kept = tf.random.uniform([n], 0, 3, dtype=tf.int32)
  keep_mask = tf.one_hot(kept, 3)[:, None, None, :]                 # [N,1,1,3]
  kept_channel = tf.reduce_sum(patches * keep_mask, -1, keepdims=True)
  std = tf.math.reduce_std(kept_channel, axis=[1, 2, 3], keepdims=True)
  noise = 0.5 + tf.random.normal(tf.shape(patches)) * std / 100.0
  dropped = keep_mask * patches + (1.0 - keep_mask) * noise
  apply = tf.random.uniform([n, 1, 1, 1]) < probability
  return tf.where(apply, dropped, patches)


def _bilinear_sample(images: tf.Tensor, rows: tf.Tensor, cols: tf.Tensor
                     ) -> tf.Tensor:
  """images [N, h, w, C] read at fractional [N, h, w] positions (clamped)."""
  height, width = images.shape[1], images.shape[2]
  rows = tf.clip_by_value(rows, 0.0, height - 1.0)
  cols = tf.clip_by_value(cols, 0.0, width - 1.0)
  row0, col0 = tf.floor(rows), tf.floor(cols)
  row_w, col_w = (rows - row0)[..., None], (cols - col0)[..., None]
  row0, col0 = tf.cast(row0, tf.int32), tf.cast(col0, tf.int32)
  row1 = tf.minimum(row0 + 1, height - 1)
  col1 = tf.minimum(col0 + 1, width - 1)
  flat = tf.reshape(images, [tf.shape(images)[0], height * width, -1])

  def at(r, c):
    return tf.gather(flat, r * width + c, batch_dims=1)

  top = at(row0, col0) * (1 - col_w) + at(row0, col1) * col_w
  bottom = at(row1, col0) * (1 - col_w) + at(row1, col1) * col_w
  return top * (1 - row_w) + bottom * row_w


def elastic_deform(patches: tf.Tensor, max_shift: float, coarse: int = 4
                   ) -> tf.Tensor:
  """Random elastic deformation of each patch: a smooth random displacement
  field (a coarse x coarse grid of uniform random shifts, bicubically
  upsampled to the patch), scaled to at most `max_shift` pixels.

  Written here because keras.layers.RandomElasticTransform (Keras 3.15)
  draws one field for a whole batch of unknown size, uses the same noise
  for both axes, and takes minutes to trace on a batch of patches.
  """
  n, height, width = tf.shape(patches)[0], patches.shape[1], patches.shape[2]
  fields = tf.image.resize(tf.random.uniform([n, coarse, coarse, 2], -1, 1),
                           [height, width], method="bicubic")
  peak = tf.reduce_max(tf.abs(fields), axis=[1, 2, 3], keepdims=True)
  fields = fields / (peak + 1e-8) * max_shift                  # [N, h, w, 2]
  grid_rows, grid_cols = tf.meshgrid(tf.range(height, dtype=tf.float32),
                                     tf.range(width, dtype=tf.float32),
                                     indexing="ij")
  return _bilinear_sample(patches, grid_rows + fields[..., 0],
                          grid_cols + fields[..., 1])


def _pa_layers(config: PatchAugment):
  """Keras 3 augmentation layers for the "PA" scheme; each draws its random
  parameters per patch."""
  value_range = (0.0, 1.0)
  layers = []
  if config.geometric:
    layers += [
        keras.layers.RandomShear(x_factor=0.3, y_factor=0.3,
                                 fill_mode="reflect"),
        keras.layers.RandomRotation(30 / 360, fill_mode="reflect"),
        keras.layers.RandomTranslation(0.1, 0.1, fill_mode="reflect"),
    ]
  if config.color:
    layers += [
        keras.layers.RandomColorJitter(
            value_range=value_range, brightness_factor=0.3,
            contrast_factor=0.3, saturation_factor=0.3, hue_factor=0.1),
        keras.layers.RandomGrayscale(factor=0.2),
    ]
  return layers


class PatchAugmenter:
  """[N, p, p, 3] -> [N, p, p, 3], each patch augmented on its own."""

  def __init__(self, config: PatchAugment):
    self.config = config
    self.layers = _pa_layers(config)

  def __call__(self, patches: tf.Tensor) -> tf.Tensor:
    config = self.config
    if config.jitter:
      patches = spatial_jitter(patches, config.jitter)
    if config.flip:
      patches = random_flip(patches)
    for layer in self.layers:
      patches = layer(patches, training=True)
    if config.elastic:
      patches = elastic_deform(patches, max_shift=0.1 * patches.shape[1])
    if config.color_drop:
      patches = color_drop(patches, config.color_drop)
    return tf.clip_by_value(patches, 0.0, 1.0)
