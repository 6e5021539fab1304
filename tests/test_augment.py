"""Per-patch augmentation: own patch only, own random draw, colour dropping."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from cpc_tf import augment
from cpc_tf import data

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
  grid = data.PatchGrid(32, 8, 4)
  config = augment.PatchAugment(jitter=1, flip=True, color_drop=1.0,
                                geometric=True, elastic=True, color=True)
  batch = next(iter(data.pretrain_dataset(
      "cifar10", "train[:64]", tfds_dir, grid, 4, augment=config, seed=0)))
  assert batch.shape == (4, 7, 7, 8, 8, 3)
  assert batch.dtype == tf.float32
  assert 0.0 <= float(tf.reduce_min(batch)) and float(tf.reduce_max(batch)) <= 1.0
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
  np.testing.assert_allclose(shifted[:, -1], images[:, -1], atol=1e-6)  # clamped
  half = augment._bilinear_sample(images, rows, cols + 0.5)
  np.testing.assert_allclose(half[:, :, :-1],
                             (images[:, :, :-1] + images[:, :, 1:]) / 2, atol=1e-6)


def test_elastic_shift_is_bounded():
  patches = tf.constant(textured_patches(8, size=16))
  out = augment.elastic_deform(patches, max_shift=1e-4)
  np.testing.assert_allclose(out, patches, atol=1e-3)
  out = augment.elastic_deform(patches, max_shift=2.0)
  assert not np.allclose(out, patches, atol=1e-3)
