"""Where images come from: a TFDS dataset split, or a folder of image files.

Both give {"image": uint8 [h, w, 3], "label": int64} examples (label -1 when
unlabelled) in a fixed canonical order when not shuffled.
"""

import functools
import os
from typing import List, Optional

import keras
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging

AUTOTUNE = tf.data.AUTOTUNE
FOLDER_PREFIX = "folder:"


class DataError(ValueError):
  """A dataset, split, folder or data_dir that cannot be used."""


def decode_rgb(encoded: tf.Tensor) -> tf.Tensor:
  """JPEG/PNG bytes -> uint8 [h, w, 3]: greyscale, RGBA, palette and CMYK
  images all become RGB."""
  return tf.io.decode_image(encoded, channels=3, expand_animations=False)


class TFDSSource:
  """One split of a prepared TFDS dataset."""

  def __init__(self, name: str, split: str, data_dir: Optional[str]):
    if data_dir and not tf.io.gfile.exists(data_dir):
      raise DataError(f"data_dir {data_dir!r} does not exist")
    try:
      self.builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as e:
      raise DataError(f"unknown TFDS dataset {name!r}: {e}") from None
    if not tf.io.gfile.exists(self.builder.data_dir):
      raise DataError(
          f"TFDS dataset {name!r} is not prepared under "
          f"{self.builder.data_dir}: prepare it first (no downloads happen "
          "here) or fix --data_dir")
    self.name, self.split = name, split
    try:
      self.num_examples = self.builder.info.splits[split].num_examples
    except (KeyError, ValueError) as e:
      raise DataError(
          f"split {split!r} of {name!r} is not usable: {e}") from None
    features = self.builder.info.features
    self.num_classes = (features["label"].num_classes
                        if "label" in features else 0)

  def labels(self) -> np.ndarray:
    """Every example's label, in canonical order, without decoding images."""
    dataset = self.builder.as_dataset(
        split=self.split, shuffle_files=False,
        decoders={"image": tfds.decode.SkipDecoding()})
    dataset = dataset.map(lambda ex: ex["label"], num_parallel_calls=AUTOTUNE)
    return np.concatenate(list(dataset.batch(8192).as_numpy_iterator()))

  def examples(self, input_context=None, shuffle_files=False, seed=None,
               indices: Optional[np.ndarray] = None) -> tf.data.Dataset:
    """Decoded examples; `indices` keeps only those positions of the
    canonical order (then files are read in that order). With an
    input_context of several input pipelines, each reads its own even share
    of the split's examples (split by example, not by file: cifar10's train
    split is a single file)."""
    split = self.split
    if input_context and input_context.num_input_pipelines > 1:
      if indices is not None:
        raise ValueError("indices cannot be combined with per-worker shards")
      split = tfds.even_splits(split, input_context.num_input_pipelines)[
          input_context.input_pipeline_id]
    if indices is not None:
      shuffle_files = False
    # Seeded: every iterator over the dataset replays the same file order.
    # No TFDS auto-caching: our pipelines repeat and stop anywhere, and a
    # cache read in part is dropped with a warning when its iterator ends.
    read_config = tfds.ReadConfig(
        shuffle_seed=seed, interleave_cycle_length=4,
        shuffle_reshuffle_each_iteration=seed is None, try_autocache=False)
    dataset = self.builder.as_dataset(
        split=split, shuffle_files=shuffle_files, read_config=read_config,
        decoders={"image": tfds.decode.SkipDecoding()})
    if indices is not None:
      keep = np.zeros(self.num_examples, bool)
      keep[indices] = True
      keep = tf.constant(keep)
      dataset = dataset.enumerate().filter(lambda i, _: keep[i]).map(
          lambda _, example: example)

    def to_example(example):
      label = (example["label"] if "label" in example
               else tf.constant(-1, tf.int64))
      return {"image": decode_rgb(example["image"]), "label": label}
    return dataset.map(to_example, num_parallel_calls=AUTOTUNE)


class FolderSource:
  """JPEG/PNG files: class subfolders (labelled) or a flat folder (unlabelled).

  `split` picks the subfolder of that name when there is one (the
  folder/train/<class>/... layout); otherwise the folder itself is used.
  Files that do not decode are skipped and counted once, up front.
  """

  def __init__(self, path: str, split: str):
    if not tf.io.gfile.isdir(path):
      raise DataError(f"image folder {path!r} does not exist")
    if "[" in split:
      raise DataError(f"split slicing ({split!r}) is not supported for image "
                      "folders; use label_fraction for subsets")
    root = os.path.join(path, split)
    self.root = root if tf.io.gfile.isdir(root) else path
    self.name, self.split = FOLDER_PREFIX + path, split
    labelled = any(tf.io.gfile.isdir(os.path.join(self.root, entry))
                   for entry in tf.io.gfile.listdir(self.root))
    try:
      index = keras.utils.image_dataset_from_directory(
          self.root, labels="inferred" if labelled else None,
          batch_size=None, shuffle=False, image_size=(8, 8), verbose=False)
    except ValueError as e:
      raise DataError(f"no usable images in {self.root!r}: {e}") from None
    paths = list(index.file_paths)
    class_names = list(getattr(index, "class_names", None) or [])
    self.class_names = class_names
    self.num_classes = len(class_names)
    labels = [class_names.index(os.path.basename(os.path.dirname(p)))
              for p in paths] if labelled else [-1] * len(paths)
    good = set(self._decodable(paths))
    bad = [p for p in paths if p not in good]
    if bad:
      logging.warning("Skipping %d of %d files in %s that do not decode as "
                      "images, e.g. %s", len(bad), len(paths), self.root,
                      bad[:3])
    self.skipped = bad
    self.paths = [p for p in paths if p in good]
    self._labels = np.array([l for p, l in zip(paths, labels) if p in good],
                            np.int64)
    if not self.paths:
      raise DataError(f"no decodable images in {self.root!r}")
    self.num_examples = len(self.paths)

  @staticmethod
  def _decodable(paths: List[str]) -> List[str]:
    """The paths whose files decode (one parallel pass, errors dropped)."""
    def check(path):
      # Returning a value computed from the decoded image keeps the decode.
      return path, tf.shape(decode_rgb(tf.io.read_file(path)))[0]
    dataset = tf.data.Dataset.from_tensor_slices(paths).map(
        check, num_parallel_calls=AUTOTUNE, deterministic=True)
    dataset = dataset.ignore_errors()
    return [p.decode() for p, _ in dataset.as_numpy_iterator()]

  def labels(self) -> np.ndarray:
    return self._labels

  def examples(self, input_context=None, shuffle_files=False, seed=None,
               indices: Optional[np.ndarray] = None) -> tf.data.Dataset:
    """Decoded examples; `indices` keeps only those positions."""
    paths, labels = np.array(self.paths), self._labels
    if indices is not None:
      paths, labels = paths[indices], labels[indices]
    dataset = tf.data.Dataset.from_tensor_slices((paths, labels))
    if input_context:
      dataset = dataset.shard(input_context.num_input_pipelines,
                              input_context.input_pipeline_id)
    if shuffle_files:
      dataset = dataset.shuffle(len(paths), seed=seed)
    dataset = dataset.map(
        lambda path, label: {"image": decode_rgb(tf.io.read_file(path)),
                             "label": label},
        num_parallel_calls=AUTOTUNE)
    return dataset.ignore_errors(log_warning=True)


@functools.lru_cache(maxsize=16)
def get_source(dataset: str, split: str, data_dir: Optional[str]):
  """TFDSSource or FolderSource for `dataset` ("folder:PATH" or a TFDS name);
  cached, so a folder is indexed and checked once per process."""
  if dataset.startswith(FOLDER_PREFIX):
    return FolderSource(dataset[len(FOLDER_PREFIX):], split)
  return TFDSSource(dataset, split, data_dir)
