"""TFDS and folder sources: odd image modes, corrupt files, the shared
folders."""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from cpc_tf.data import pipelines
from cpc_tf.data import sources
from cpc_tf.data.patches import PatchGrid
from helpers import SHARED


def make_image(path, mode, size=(20, 30)):
  pixels = (np.random.default_rng(0).random(size + (3,)) * 255).astype(np.uint8)
  Image.fromarray(pixels).convert(mode).save(path)


@pytest.fixture
def odd_folder(tmp_path):
  """Two classes of images in every mode, plus a truncated JPEG and a text
  file named .png."""
  for label in ("cats", "dogs"):
    os.makedirs(tmp_path / label)
  make_image(tmp_path / "cats" / "grey.png", "L")
  make_image(tmp_path / "cats" / "cmyk.jpg", "CMYK")
  make_image(tmp_path / "cats" / "rgba.png", "RGBA")
  make_image(tmp_path / "dogs" / "palette.png", "P")
  make_image(tmp_path / "dogs" / "small.jpg", "RGB", size=(5, 7))
  make_image(tmp_path / "dogs" / "full.jpg", "RGB")
  with open(tmp_path / "dogs" / "full.jpg", "rb") as f:
    (tmp_path / "dogs" / "truncated.jpg").write_bytes(f.read()[:120])
  (tmp_path / "cats" / "notes.png").write_text("not an image")
  return tmp_path


def test_folder_with_corrupt_and_odd_modes_loads_right_count(odd_folder):
  source = sources.FolderSource(str(odd_folder), "train")
  assert source.num_examples == 6
  assert source.num_classes == 2 and source.class_names == ["cats", "dogs"]
  assert sorted(os.path.basename(p) for p in source.skipped) == [
      "notes.png", "truncated.jpg"]
  examples = list(source.examples().as_numpy_iterator())
  assert len(examples) == 6
  assert all(ex["image"].shape[-1] == 3 and ex["image"].dtype == np.uint8
             for ex in examples)
  assert sorted(ex["label"] for ex in examples) == [0, 0, 0, 1, 1, 1]


def test_small_images_are_upscaled_in_the_pipelines(odd_folder):
  grid = PatchGrid(16, 8, 4)
  batch = next(iter(pipelines.pretrain_dataset(f"folder:{odd_folder}", "train",
                                          None, grid, 6)))
  assert batch.shape == (6, 3, 3, 8, 8, 3)
  test = pipelines.classification_dataset(f"folder:{odd_folder}", "train", None,
                                     grid, 4, train=False)
  assert sum(int(labels.shape[0]) for _, labels in test) == 6


def test_flat_folder_is_unlabelled(tmp_path):
  for name in ("a.png", "b.jpg"):
    make_image(tmp_path / name, "RGB")
  source = sources.get_source(f"folder:{tmp_path}", "train", None)
  assert source.num_examples == 2 and source.num_classes == 0
  assert list(source.labels()) == [-1, -1]


def test_empty_and_missing_folders_are_clear_errors(tmp_path):
  with pytest.raises(sources.DataError, match="no usable images"):
    sources.FolderSource(str(tmp_path), "train")
  with pytest.raises(sources.DataError, match="does not exist"):
    sources.FolderSource(str(tmp_path / "missing"), "train")
  (tmp_path / "junk.png").write_text("junk")
  with pytest.raises(sources.DataError, match="no decodable images"):
    sources.FolderSource(str(tmp_path), "train")


@pytest.mark.parametrize("name,split,count,classes,size", [
    ("cifar10_mini", "train", 1000, 10, 32),
    ("cifar10_mini", "test", 1000, 10, 32),
    ("imagenette_mini", "train", 1000, 10, 224),
    ("imagenette_mini", "val", 500, 10, 224),
])
def test_shared_folders_load_labelled(name, split, count, classes, size):
  source = sources.get_source(f"folder:{os.path.join(SHARED, 'data', name)}",
                              split, None)
  assert source.num_examples == count and source.num_classes == classes
  assert not source.skipped
  assert np.bincount(source.labels()).tolist() == [count // classes] * classes
  example = next(iter(source.examples()))
  assert example["image"].shape == (size, size, 3)


def test_label_subset_of_a_folder(odd_folder):
  grid = PatchGrid(16, 8, 8)
  dataset = pipelines.classification_dataset(
      f"folder:{odd_folder}", "train", None, grid, 2, train=False,
      indices=np.array([0, 5]))
  labels = np.concatenate([l.numpy() for _, l in dataset])
  assert labels.tolist() == [0, 1]


def test_evaluation_datasets_run_without_autotuning(odd_folder):
  # Freeing an autotuned iterator waits for its tuning thread: evaluation
  # datasets get a new iterator at every validation, training ones one per fit.
  grid = PatchGrid(16, 8, 8)
  def autotuned(train):
    dataset = pipelines.classification_dataset(f"folder:{odd_folder}", "train",
                                          None, grid, 2, train=train)
    return dataset.options().autotune.enabled is not False
  assert not autotuned(train=False)
  assert autotuned(train=True)


def test_tfds_label_subset_reads_the_chosen_examples(tfds_dir):
  source = sources.get_source("cifar10", "test[:40]", tfds_dir)
  labels = source.labels()
  chosen = np.array([1, 7, 30])
  picked = [int(ex["label"]) for ex in source.examples(indices=chosen)]
  assert picked == labels[chosen].tolist()


def image_keys(dataset):
  return [ex["image"].numpy().tobytes() for ex in dataset]


@pytest.mark.parametrize("kind", ["tfds", "folder"])
def test_per_worker_pipelines_split_the_examples(kind, tfds_dir, odd_folder):
  """Two input pipelines (two workers) read disjoint shares that together
  are the whole split, even from cifar10's single file."""
  source = (sources.get_source("cifar10", "train[:40]", tfds_dir)
            if kind == "tfds"
            else sources.FolderSource(str(odd_folder), "train"))
  everything = image_keys(source.examples())
  shares = [image_keys(source.examples(
      tf.distribute.InputContext(2, worker, 2), shuffle_files=True, seed=1))
            for worker in range(2)]
  assert min(map(len, shares)) >= len(everything) // 2
  assert not set(shares[0]) & set(shares[1])
  assert sorted(shares[0] + shares[1]) == sorted(everything)
