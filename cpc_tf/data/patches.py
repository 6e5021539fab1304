"""Images -> grid of overlapping patches (Section 2.1, Fig. 2)."""

import dataclasses

import tensorflow as tf


def grid_size(image_size: int, patch_size: int, stride: int) -> int:
  """Number of patches along one side; the patches must tile the image
  exactly."""
  if patch_size > image_size:
    raise ValueError(
        f"patch_size {patch_size} is larger than the image size {image_size}")
  if (image_size - patch_size) % stride:
    raise ValueError(
        f"patches of {patch_size} at stride {stride} do not tile an image of "
        f"{image_size}: (image_size - patch_size) must be a multiple of stride")
  return (image_size - patch_size) // stride + 1


def extract_patches(images: tf.Tensor, patch_size: int,
                    stride: int) -> tf.Tensor:
  """[B, S, S, C] -> [B, G, G, patch_size, patch_size, C],
  G = grid_size(S, ...).

  Patch (i, j) is images[:, i*stride : i*stride+patch_size, j*stride : ...].
  """
  channels = images.shape[-1]
  patches = tf.image.extract_patches(
      images, sizes=[1, patch_size, patch_size, 1],
      strides=[1, stride, stride, 1], rates=[1, 1, 1, 1], padding="VALID")
  rows, cols = patches.shape[1], patches.shape[2]
  # [B, G, G, p*p*C] -> [B, G, G, p, p, C]
  return tf.reshape(patches, [-1, rows, cols, patch_size, patch_size, channels])


@dataclasses.dataclass(frozen=True)
class PatchGrid:
  """How an image becomes patches: the input size and the patch layout."""
  image_size: int
  patch_size: int
  stride: int

  @property
  def grid_size(self) -> int:
    return grid_size(self.image_size, self.patch_size, self.stride)
