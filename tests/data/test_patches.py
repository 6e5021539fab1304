import numpy as np
import pytest
import tensorflow as tf

from cpc_tf.data import patches


@pytest.mark.parametrize("image_size,patch_size,stride,grid", [
    (32, 8, 4, 7), (240, 80, 32, 6), (256, 64, 32, 7), (32, 8, 8, 4)])
def test_grid_size(image_size, patch_size, stride, grid):
  assert patches.grid_size(image_size, patch_size, stride) == grid


def test_grid_size_rejects_bad_layouts():
  with pytest.raises(ValueError, match="larger than the image"):
    patches.grid_size(32, 40, 4)
  with pytest.raises(ValueError, match="do not tile"):
    patches.grid_size(32, 8, 5)


def test_patch_ij_is_the_crop_at_i_stride_j_stride():
  rng = np.random.default_rng(0)
  images = rng.random((2, 40, 40, 3)).astype(np.float32)
  size, stride = 16, 8
  grid = patches.extract_patches(tf.constant(images), size, stride).numpy()
  assert grid.shape == (2, 4, 4, size, size, 3)
  for i in range(4):
    for j in range(4):
      np.testing.assert_array_equal(
          grid[:, i, j],
          images[:, i * stride:i * stride + size, j * stride:j * stride + size])
