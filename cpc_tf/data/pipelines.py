"""Input pipelines: dataset -> images -> (augmented) patch grids, per
replica."""

from typing import Optional

import numpy as np
import tensorflow as tf

from cpc_tf.data import augment as augment_lib
from cpc_tf.data import patches as patches_lib
from cpc_tf.data import sources
from cpc_tf.data.patches import PatchGrid

AUTOTUNE = tf.data.AUTOTUNE
NO_AUGMENT = augment_lib.PatchAugment()     # every per-patch augmentation off


def random_crop_resize(image: tf.Tensor, size: int, min_area: float,
                       seed: Optional[int] = None) -> tf.Tensor:
  """A random crop covering [min_area, 1] of the image, resized to [size, size].

  Returns float32 in [0, 1]. `seed` (non-zero) is needed under op determinism.
  """
  begin, crop_size, _ = tf.image.sample_distorted_bounding_box(
      tf.shape(image), bounding_boxes=tf.zeros([1, 0, 4]),
      min_object_covered=0.0, aspect_ratio_range=(3 / 4, 4 / 3),
      area_range=(min_area, 1.0), max_attempts=20,
      use_image_if_no_bounding_boxes=True, seed=seed)
  crop = tf.slice(image, begin, crop_size)
  crop = tf.image.resize(tf.image.convert_image_dtype(crop, tf.float32),
                         [size, size], antialias=True)
  return tf.ensure_shape(tf.clip_by_value(crop, 0.0, 1.0), [size, size, 3])


def center_crop(image: tf.Tensor, size: int, crop_fraction: float = 0.875
                ) -> tf.Tensor:
  """Evaluation view: resize the short side to size / crop_fraction, then a
  central [size, size] crop (images already at `size` are only converted).

  Returns float32 in [0, 1].
  """
  image = tf.image.convert_image_dtype(image, tf.float32)
  shape = tf.shape(image)
  short = tf.cast(tf.minimum(shape[0], shape[1]), tf.float32)
  scale = tf.cond(short <= size, lambda: size / short,
                  lambda: size / crop_fraction / short)
  new_size = tf.cast(tf.math.ceil(tf.cast(shape[:2], tf.float32) * scale),
                     tf.int32)
  image = tf.image.resize(image, new_size, antialias=True)
  top = (new_size[0] - size) // 2
  left = (new_size[1] - size) // 2
  return tf.ensure_shape(
      tf.clip_by_value(image[top:top + size, left:left + size], 0.0, 1.0),
      [size, size, 3])


def image_to_patches(image: tf.Tensor, grid: PatchGrid, train: bool,
                     min_crop_area: float, seed: Optional[int] = None
                     ) -> tf.Tensor:
  """uint8 [h, w, 3] -> float [G, G, p, p, 3]: the training view (random
  crop-resize) or the evaluation view (centre crop), cut into patches."""
  if train:
    image = random_crop_resize(image, grid.image_size, min_crop_area, seed)
  else:
    image = center_crop(image, grid.image_size)
  return patches_lib.extract_patches(image[None], grid.patch_size,
                                     grid.stride)[0]


def augment_batch(augment: augment_lib.PatchAugment):
  """A map function: [b, G, G, p, p, 3] -> the same, each patch augmented."""
  augmenter = augment_lib.PatchAugmenter(augment)

  def augment_grids(grids):
    shape = tf.shape(grids)
    flat = tf.reshape(grids, tf.concat([[-1], shape[3:]], axis=0))
    return tf.reshape(augmenter(flat), shape)
  return augment_grids


def pretrain_dataset(name: str, split: str, data_dir: Optional[str],
                     grid: PatchGrid, global_batch_size: int,
                     min_crop_area: float = 0.35,
                     augment: augment_lib.PatchAugment = NO_AUGMENT,
                     seed: Optional[int] = None,
                     input_context: Optional[tf.distribute.InputContext] = None
                     ) -> tf.data.Dataset:
  """Infinite dataset of [b, G, G, p, p, 3] patch grids, b the per-replica
  batch, each patch augmented on its own."""
  batch_size = (input_context.get_per_replica_batch_size(global_batch_size)
                if input_context else global_batch_size)

  if seed is not None and input_context:
    # Each worker's pipeline draws its own crops and order.
    seed += 1000 * input_context.input_pipeline_id
  # Op seeds must be non-zero under op determinism.
  crop_seed = None if seed is None else seed + 1

  def to_patches(example):
    return image_to_patches(example["image"], grid, True, min_crop_area,
                            crop_seed)

  dataset = sources.get_source(name, split, data_dir).examples(
      input_context, shuffle_files=True, seed=seed)
  # Seeded, a new iterator replays the same endless stream: Keras fit() under
  # a distribution strategy draws one batch from a first iterator (to build
  # the model) and then starts another.
  dataset = dataset.repeat().shuffle(10 * batch_size, seed=seed,
                                     reshuffle_each_iteration=seed is None)
  dataset = dataset.map(to_patches, num_parallel_calls=AUTOTUNE)
  dataset = dataset.batch(batch_size, drop_remainder=True)
  if augment.active:
    dataset = dataset.map(augment_batch(augment), num_parallel_calls=AUTOTUNE)
  return dataset.prefetch(AUTOTUNE)


def classification_dataset(name: str, split: str, data_dir: Optional[str],
                           grid: PatchGrid, batch_size: int, train: bool,
                           min_crop_area: float = 0.35,
                           augment: augment_lib.PatchAugment = NO_AUGMENT,
                           indices: Optional[np.ndarray] = None,
                           seed: Optional[int] = None) -> tf.data.Dataset:
  """(patches [b, G, G, p, p, 3], label) batches.

  train: the pretraining augmentation, shuffled and repeated forever;
  otherwise one pass over a single centre crop per image. `indices` keeps
  only those examples (positions in the split's canonical order), e.g. a
  subsets.label_subset.
  """
  def to_patches(example):
    patches = image_to_patches(example["image"], grid, train, min_crop_area)
    return patches, example["label"]

  dataset = sources.get_source(name, split, data_dir).examples(
      shuffle_files=train, seed=seed, indices=indices)
  if train:
    dataset = dataset.repeat().shuffle(10 * batch_size, seed=seed)
  dataset = dataset.map(to_patches, num_parallel_calls=AUTOTUNE)
  dataset = dataset.batch(batch_size, drop_remainder=train)
  if train and augment.active:
    augment_grids = augment_batch(augment)
    dataset = dataset.map(lambda grids, labels: (augment_grids(grids), labels),
                          num_parallel_calls=AUTOTUNE)
  dataset = dataset.prefetch(AUTOTUNE)
  return dataset if train else without_autotuning(dataset)


def without_autotuning(dataset: tf.data.Dataset) -> tf.data.Dataset:
  """The dataset with tf.data's autotuning off (AUTOTUNE settings then take
  tf.data's fixed defaults).

  For datasets iterated once per validation: freeing an iterator waits for
  its autotuning thread's next wake-up, which inside Keras fit was seen to
  take 12-50 s at the start of validations (docs/RESULTS.md)."""
  options = tf.data.Options()
  options.autotune.enabled = False
  return dataset.with_options(options)
