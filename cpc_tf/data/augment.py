"""Per-patch augmentation (Section 4.1, "RC" and "PA"): every patch of every
image gets its own random draw.

Works on a flat batch of patches [N, p, p, 3] in [0, 1]; the pipeline
reshapes [B, G, G, p, p, 3] to it and back.
"""

import dataclasses
import math
from typing import Tuple

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


# Ranges of the PA primitives (AutoAugment-style magnitudes).
MAX_SHEAR = 0.3              # shear factor, each axis
MAX_ROTATION = 30.0          # degrees
MAX_TRANSLATION = 0.1        # fraction of the patch side, each axis
MAX_BRIGHTNESS = 0.3         # added to every channel
MAX_CONTRAST = 0.3           # contrast factor in [1 - c, 1 + c]
MAX_SATURATION = 0.3         # saturation factor in [1 - s, 1 + s]
MAX_HUE = 0.1                # fraction of a full turn of hue
GREYSCALE_PROBABILITY = 0.2


def _uniform(n, bound):
  return tf.random.uniform([n], -bound, bound)


def _matrices(n, rows):
  """Three rows of three [N]-shaped or scalar entries -> [N, 3, 3]."""
  return tf.stack([tf.stack([tf.broadcast_to(tf.cast(e, tf.float32), [n])
                             for e in row], -1) for row in rows], -2)


def _about_centre(matrices, centre):
  """The same maps about the patch centre instead of its corner."""
  shift = tf.constant([[1.0, 0, centre], [0, 1, centre], [0, 0, 1]])
  unshift = tf.constant([[1.0, 0, -centre], [0, 1, -centre], [0, 0, 1]])
  return shift @ matrices @ unshift


def warp_matrices(n, size: int, config: PatchAugment) -> tf.Tensor:
  """[N, 3, 3] maps from an output pixel (col, row, 1) to where it is read in
  the input patch: jitter, then flip, then shear, rotation, translation."""
  warp = tf.eye(3, batch_shape=[n])
  if config.jitter:
    # A random (size - jitter)^2 window resized to size^2, mapping first and
    # last pixel centres as tf.image.crop_and_resize does.
    corner = tf.cast(tf.random.uniform([n, 2], 0, config.jitter + 1,
                                       dtype=tf.int32), tf.float32)
    scale = (size - config.jitter - 1) / (size - 1)
    warp @= _matrices(n, [[scale, 0.0, corner[:, 0]],
                          [0.0, scale, corner[:, 1]], [0.0, 0.0, 1.0]])
  if config.flip:
    mirror = tf.where(tf.random.uniform([n]) < 0.5, -1.0, 1.0)
    warp @= _matrices(n, [[mirror, 0.0, (1 - mirror) * (size - 1) / 2],
                          [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
  if config.geometric:
    angle = _uniform(n, MAX_ROTATION * math.pi / 180)
    cos, sin = tf.cos(angle), tf.sin(angle)
    shear = _matrices(n, [[1.0, _uniform(n, MAX_SHEAR), 0.0],
                          [_uniform(n, MAX_SHEAR), 1.0, 0.0], [0.0, 0.0, 1.0]])
    rotation = _matrices(n, [[cos, -sin, 0.0], [sin, cos, 0.0],
                             [0.0, 0.0, 1.0]])
    max_shift = MAX_TRANSLATION * size
    translation = _matrices(n, [[1.0, 0.0, _uniform(n, max_shift)],
                                [0.0, 1.0, _uniform(n, max_shift)],
                                [0.0, 0.0, 1.0]])
    warp @= _about_centre(shear @ rotation @ translation, (size - 1) / 2)
  return warp


def warp(patches: tf.Tensor, config: PatchAugment) -> tf.Tensor:
  """Spatial jitter, flip and the PA shear, rotation and translation of each
  patch, composed into one affine map and resampled once (bilinear,
  reflecting at the border) by keras.ops.image.affine_transform. (The Keras
  layers RandomShear, RandomRotation and RandomTranslation resample once each,
  three times the cost and three interpolations.)"""
  matrices = warp_matrices(tf.shape(patches)[0], patches.shape[1], config)
  transform = tf.reshape(matrices, [-1, 9])[:, :8]
  return keras.ops.image.affine_transform(
      patches, transform, interpolation="bilinear", fill_mode="reflect")


def color_matrices(brightness, contrast, saturation, hue
                   ) -> Tuple[tf.Tensor, tf.Tensor]:
  """Per-patch colour transforms as an affine map of the pixel and the
  patch's channel means: out = x @ pixel_map + mean(x) @ mean_map + shift.

  brightness, contrast, saturation, hue: [N]. In that order: brightness adds
  to every channel, contrast scales about the patch's channel means, then
  saturation scales and hue (radians) turns the chroma plane of YIQ (the
  fast hue of tfa.image.random_hsv_in_yiq); saturation 0 is greyscale.
  Returns (pixel_map [N, 3, 3], [N, 4, 3]: mean_map rows and the shift row).
  """
  n = tf.shape(brightness)[0]
  cos, sin = saturation * tf.cos(hue), saturation * tf.sin(hue)
  chroma = _matrices(n, [[1.0, 0.0, 0.0], [0.0, cos, sin], [0.0, -sin, cos]])
  to_yiq = tf.image.rgb_to_yiq(tf.eye(3))         # rgb_row @ to_yiq = yiq_row
  matrix = to_yiq @ chroma @ tf.linalg.inv(to_yiq)
  contrast = contrast[:, None, None]
  shift = brightness[:, None] * tf.reduce_sum(matrix, axis=1)       # [N, 3]
  return contrast * matrix, tf.concat([(1 - contrast) * matrix,
                                       shift[:, None]], axis=1)


def recolor(patches: tf.Tensor) -> tf.Tensor:
  """The PA colour transforms, drawn per patch: brightness, contrast,
  saturation (greyscale with GREYSCALE_PROBABILITY) and hue."""
  n = tf.shape(patches)[0]
  saturation = tf.where(tf.random.uniform([n]) < GREYSCALE_PROBABILITY, 0.0,
                        1.0 + _uniform(n, MAX_SATURATION))
  return apply_color(patches, *color_matrices(
      _uniform(n, MAX_BRIGHTNESS), 1.0 + _uniform(n, MAX_CONTRAST),
      saturation, _uniform(n, MAX_HUE * 2 * math.pi)))


def apply_color(patches, pixel_map, mean_and_shift):
  """patches [N, p, p, 3] through color_matrices' maps."""
  mean = tf.reduce_mean(patches, axis=[1, 2])                       # [N, 3]
  mean = tf.concat([mean, tf.ones_like(mean[:, :1])], axis=1)       # [N, 4]
  offset = tf.einsum("nc,ncd->nd", mean, mean_and_shift)
  return (tf.einsum("nhwc,ncd->nhwd", patches, pixel_map)
          + offset[:, None, None, :])


def color_drop(patches: tf.Tensor, probability: float) -> tf.Tensor:
  """Keeps one random channel of a patch and drops the other two (Doersch et
  al. 2015): a dropped channel becomes mid-grey 0.5 plus Gaussian noise with
  1/100 of the kept channel's standard deviation, so it carries no image."""
  n = tf.shape(patches)[0]
  kept = tf.random.uniform([n], 0, 3, dtype=tf.int32)
  dropped = tf.random.uniform([n]) < probability
  kept_channel = tf.gather(patches, kept, axis=3, batch_dims=1)     # [N, p, p]
  std = tf.math.reduce_std(kept_channel, axis=[1, 2])
  # One noise image for both dropped channels: a third of the draws.
  noise = 0.5 + tf.random.normal(tf.shape(kept_channel)) * (std / 100.0)[
      :, None, None]
  stays = tf.logical_or(tf.one_hot(kept, 3, on_value=True, off_value=False),
                        tf.logical_not(dropped)[:, None])           # [N, 3]
  return tf.where(stays[:, None, None, :], patches, noise[..., None])


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


class PatchAugmenter:
  """[N, p, p, 3] -> [N, p, p, 3], each patch augmented on its own."""

  def __init__(self, config: PatchAugment):
    self.config = config

  def __call__(self, patches: tf.Tensor) -> tf.Tensor:
    config = self.config
    if config.jitter or config.flip or config.geometric:
      patches = warp(patches, config)
    if config.elastic:
      patches = elastic_deform(patches, max_shift=0.1 * patches.shape[1])
    if config.color:
      patches = tf.clip_by_value(recolor(patches), 0.0, 1.0)
    if config.color_drop:
      patches = color_drop(patches, config.color_drop)
    return tf.clip_by_value(patches, 0.0, 1.0)
