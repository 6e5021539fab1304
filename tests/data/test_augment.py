"""Per-patch augmentation: own patch only, own random draw, colour dropping."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from cpc_tf.data import augment
from cpc_tf.data import pipelines
from cpc_tf.data.patches import PatchGrid

FAMILIES = {
    "jitter": augment.PatchAugment(jitter=2),
    "flip": augment.PatchAugment(flip=True),
    "color_drop": augment.PatchAugment(color_drop=1.0),
    "geometric": augment.PatchAugment(geometric=True),
    "elastic": augment.PatchAugment(elastic=True),
    "color": augment.PatchAugment(color=True),
}


def augmented(config, patches, seed=0):
  keras.utils.set_random_seed(seed)
  return augment.PatchAugmenter(config)(tf.constant(patches)).numpy()


def textured_patches(n, size=8, seed=0):
  rng = np.random.default_rng(seed)
  ramp = np.linspace(0.1, 0.9, size, dtype=np.float32)
  base = ramp[None, :, None, None] * ramp[None, None, :, None]
  return np.clip(base + 0.2 * rng.random((n, size, size, 3)), 0, 1).astype(
      np.float32)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_patch_changes_alone_and_draws_its_own(family):
  config = FAMILIES[family]
  patches = np.repeat(textured_patches(1), 16, axis=0)
  out = augmented(config, patches)
  assert out.shape == patches.shape and out.min() >= 0 and out.max() <= 1
  # Identical inputs, different random draws per patch.
  assert len({o.tobytes() for o in out}) > 1
  # Changing patch 3 changes no other patch's output (same seed).
  changed = patches.copy()
  changed[3] = textured_patches(1, seed=7)[0]
  out_changed = augmented(config, changed)
  others = [i for i in range(16) if i != 3]
  np.testing.assert_allclose(out_changed[others], out[others], atol=1e-6)
  assert not np.allclose(out_changed[3], out[3])


def test_color_drop_leaves_exactly_one_channel_carrying_the_image():
  patches = textured_patches(64)
  out = augmented(augment.PatchAugment(color_drop=1.0), patches)
  kept_counts = np.zeros(3)
  for before, after in zip(patches, out):
    kept = [np.allclose(after[..., c], before[..., c]) for c in range(3)]
    assert sum(kept) == 1
    k = kept.index(True)
    kept_counts[k] += 1
    for c in set(range(3)) - {k}:
      assert abs(after[..., c].mean() - 0.5) < 0.01
      assert after[..., c].std() < before[..., k].std() / 20
  assert (kept_counts > 0).all()   # every channel gets kept sometimes


def test_color_drop_probability_zero_and_half():
  patches = textured_patches(200)
  np.testing.assert_array_equal(
      augmented(augment.PatchAugment(color_drop=1e-9), patches), patches)
  out = augmented(augment.PatchAugment(color_drop=0.5), patches)
  dropped = np.mean([not np.allclose(a, b) for a, b in zip(out, patches)])
  assert 0.35 < dropped < 0.65


def test_jitter_is_a_crop_of_the_patch():
  patches = textured_patches(32)
  out = augmented(augment.PatchAugment(jitter=2), patches)
  # Corner pixels come from inside the original's 3x3 top-left corner region.
  for before, after in zip(patches, out):
    assert any(np.allclose(after[0, 0], before[i, j], atol=1e-5)
               for i in range(3) for j in range(3))


def test_pretrain_pipeline_augments_patches(tfds_dir):
  grid = PatchGrid(32, 8, 4)
  config = augment.PatchAugment(jitter=1, flip=True, color_drop=1.0,
                                geometric=True, elastic=True, color=True)
  batch = next(iter(pipelines.pretrain_dataset(
      "cifar10", "train[:64]", tfds_dir, grid, 4, augment=config, seed=0)))
  assert batch.shape == (4, 7, 7, 8, 8, 3)
  assert batch.dtype == tf.float32
  assert 0.0 <= float(tf.reduce_min(batch))
  assert float(tf.reduce_max(batch)) <= 1.0
  assert dataclasses.replace(config, jitter=0).active
  assert not augment.PatchAugment().active


def test_bilinear_sample_shifts_and_interpolates():
  images = tf.random.uniform([2, 5, 6, 3])
  rows, cols = tf.meshgrid(tf.range(5.0), tf.range(6.0), indexing="ij")
  rows, cols = tf.tile(rows[None], [2, 1, 1]), tf.tile(cols[None], [2, 1, 1])
  np.testing.assert_allclose(augment._bilinear_sample(images, rows, cols),
                             images, atol=1e-6)
  shifted = augment._bilinear_sample(images, rows + 1, cols)
  np.testing.assert_allclose(shifted[:, :-1], images[:, 1:], atol=1e-6)
  # The last column is clamped.
  np.testing.assert_allclose(shifted[:, -1], images[:, -1], atol=1e-6)
  half = augment._bilinear_sample(images, rows, cols + 0.5)
  np.testing.assert_allclose(half[:, :, :-1],
                             (images[:, :, :-1] + images[:, :, 1:]) / 2,
                             atol=1e-6)


def test_elastic_shift_is_bounded():
  patches = tf.constant(textured_patches(8, size=16))
  out = augment.elastic_deform(patches, max_shift=1e-4)
  np.testing.assert_allclose(out, patches, atol=1e-3)
  out = augment.elastic_deform(patches, max_shift=2.0)
  assert not np.allclose(out, patches, atol=1e-3)


def test_flip_alone_mirrors_some_patches_exactly():
  patches = textured_patches(64)
  out = augmented(augment.PatchAugment(flip=True), patches)
  same = [np.allclose(a, b, atol=1e-6) for a, b in zip(out, patches)]
  mirrored = [np.allclose(a, b[:, ::-1], atol=1e-6)
              for a, b in zip(out, patches)]
  assert all(s or m for s, m in zip(same, mirrored))
  assert 10 < sum(mirrored) < 54


def test_jitter_alone_is_crop_and_resize_of_a_window():
  patches = textured_patches(32)
  jitter, size = 2, 8
  out = augmented(augment.PatchAugment(jitter=jitter), patches)
  keep = size - jitter
  windows = [(top, left) for top in range(jitter + 1)
             for left in range(jitter + 1)]
  for before, after in zip(patches, out):
    boxes = np.array([[t, l, t + keep - 1, l + keep - 1] for t, l in windows],
                     np.float32) / (size - 1)
    candidates = tf.image.crop_and_resize(
        np.repeat(before[None], len(windows), 0), boxes,
        np.arange(len(windows)), [size, size]).numpy()
    assert min(np.abs(c - after).max() for c in candidates) < 1e-5


def numpy_bilinear(patch, rows, cols):
  """Reference: patch [h, w, C] read at fractional positions inside it."""
  r0, c0 = np.floor(rows).astype(int), np.floor(cols).astype(int)
  r1 = np.minimum(r0 + 1, patch.shape[0] - 1)
  c1 = np.minimum(c0 + 1, patch.shape[1] - 1)
  wr, wc = (rows - r0)[..., None], (cols - c0)[..., None]
  top = patch[r0, c0] * (1 - wc) + patch[r0, c1] * wc
  bottom = patch[r1, c0] * (1 - wc) + patch[r1, c1] * wc
  return top * (1 - wr) + bottom * wr


def test_warp_resamples_once_through_the_composed_matrix():
  config = augment.PatchAugment(jitter=2, flip=True, geometric=True)
  size = 16
  patches = textured_patches(32, size=size)
  keras.utils.set_random_seed(3)
  matrices = augment.warp_matrices(32, size, config).numpy()
  keras.utils.set_random_seed(3)
  out = augment.warp(tf.constant(patches), config).numpy()
  cols, rows = np.meshgrid(np.arange(size, dtype=np.float32),
                           np.arange(size, dtype=np.float32))
  points = np.stack([cols, rows, np.ones_like(cols)], -1)        # (x, y, 1)
  checked = 0
  for patch, after, matrix in zip(patches, out, matrices):
    source = points @ matrix.T
    inside = ((source[..., :2] >= 0) & (source[..., :2] <= size - 1)).all(-1)
    expected = numpy_bilinear(patch, np.clip(source[..., 1], 0, size - 1),
                              np.clip(source[..., 0], 0, size - 1))
    np.testing.assert_allclose(after[inside], expected[inside], atol=1e-4)
    checked += inside.sum()
  assert checked > 0.5 * patches[..., 0].size
  # Shear, rotation and translation stay within their ranges: the centre
  # moves at most the translation (then jitter and flip) allow.
  centre = np.array([(size - 1) / 2, (size - 1) / 2, 1.0])
  moved = np.abs(matrices @ centre - centre)[:, :2]
  assert moved.max() <= augment.MAX_TRANSLATION * size * 1.5 + 2 + 1e-4


NTSC_YIQ = np.array([[0.299, 0.587, 0.114],
                     [0.596, -0.274, -0.322],
                     [0.211, -0.523, 0.312]])   # yiq = NTSC_YIQ @ rgb


def numpy_color(patch, brightness, contrast, saturation, hue):
  """Reference from the definitions: add brightness, scale about the channel
  means, then scale and turn the (I, Q) chroma plane."""
  x = patch + brightness
  x = contrast * x + (1 - contrast) * x.mean(axis=(0, 1))
  yiq = x @ NTSC_YIQ.T
  i, q = yiq[..., 1], yiq[..., 2]
  turned = np.stack([yiq[..., 0],
                     saturation * (i * np.cos(hue) - q * np.sin(hue)),
                     saturation * (i * np.sin(hue) + q * np.cos(hue))], -1)
  return turned @ np.linalg.inv(NTSC_YIQ).T


@pytest.mark.parametrize("brightness,contrast,saturation,hue", [
    (0.0, 1.0, 1.0, 0.0), (0.2, 1.0, 1.0, 0.0), (0.0, 0.7, 1.0, 0.0),
    (0.0, 1.0, 0.0, 0.0), (0.0, 1.0, 1.3, 0.5), (-0.1, 1.2, 0.8, -0.6)])
def test_color_matrices_agree_with_numpy(brightness, contrast, saturation, hue):
  patches = textured_patches(4)
  maps = augment.color_matrices(*(tf.fill([4], float(v)) for v in (
      brightness, contrast, saturation, hue)))
  out = augment.apply_color(tf.constant(patches), *maps).numpy()
  for patch, after in zip(patches, out):
    expected = numpy_color(patch, brightness, contrast, saturation, hue)
    # tf.image's YIQ coefficients differ from NTSC's in the third decimal.
    np.testing.assert_allclose(after, expected, atol=5e-3)
  if saturation == 0:      # greyscale: every channel is the luma
    np.testing.assert_allclose(out[..., 0], out[..., 2], atol=1e-4)


def test_recolor_turns_about_a_fifth_grey():
  patches = textured_patches(400)
  out = augmented(augment.PatchAugment(color=True), patches)
  grey = np.abs(out[..., 0] - out[..., 1]).max(axis=(1, 2)) < 1e-4
  grey &= np.abs(out[..., 1] - out[..., 2]).max(axis=(1, 2)) < 1e-4
  assert 0.12 < grey.mean() < 0.28
