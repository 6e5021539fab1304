"""Test set-up: two logical CPU devices, so MirroredStrategy has two
replicas."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from cpc_tf.train import trainer
from helpers import TFDS_DIR, tiny_config, voc_xml

_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    _cpu, [tf.config.LogicalDeviceConfiguration()] * 2)


@pytest.fixture
def tfds_dir():
  if not os.path.isdir(os.path.join(TFDS_DIR, "cifar10")):
    pytest.fail(f"prepared cifar10 not found under {TFDS_DIR} (see ../shared)")
  return TFDS_DIR


@pytest.fixture(scope="session")
def pretrained(tmp_path_factory):
  """(TINY pretrained in a fresh model_dir, its encoder's weights), shared
  by the evaluation tests, which only read it."""
  model_dir = str(tmp_path_factory.mktemp("pretrained"))
  config = tiny_config(model_dir=model_dir)
  model = trainer.pretrain(config)
  return config, model.encoder.get_weights()


@pytest.fixture(scope="session")
def separable_folder(tmp_path_factory):
  """folder:PATH of a trivially separable labelled set: noisy reddish and
  bluish 32x32 images, 40 per class to train on and 20 to test."""
  root = tmp_path_factory.mktemp("separable")
  rng = np.random.default_rng(0)
  for split, count in (("train", 40), ("test", 20)):
    for label, colour in (("blue", (40, 60, 200)), ("red", (200, 50, 40))):
      os.makedirs(root / split / label)
      for i in range(count):
        pixels = np.clip(rng.normal(colour, 40, (32, 32, 3)), 0, 255)
        Image.fromarray(pixels.astype(np.uint8)).save(
            root / split / label / f"{i}.png")
  return f"folder:{root}"


def voc2007_devkit(root):
  """A tiny VOCdevkit/VOC2007 as the official archives unpack: 3 trainval
  images (train: 2, val: 1) and 2 test images, 48x32."""
  devkit = root / "VOCdevkit" / "VOC2007"
  for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
    os.makedirs(devkit / sub)
  rng = np.random.default_rng(0)
  objects = {"000001": [("cat", 0, 1, 1, 30, 20), ("dog", 1, 10, 5, 40, 25)],
             "000002": [("person", 0, 3, 4, 12, 30)],
             "000003": [("cat", 0, 20, 10, 48, 30)],
             "000004": [("dog", 0, 5, 5, 25, 25)],
             "000005": [("person", 1, 1, 2, 47, 31), ("cat", 0, 4, 4, 9, 9)]}
  for stem, boxes in objects.items():
    pixels = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(devkit / "JPEGImages" / f"{stem}.jpg")
    (devkit / "Annotations" / f"{stem}.xml").write_text(
        voc_xml(f"{stem}.jpg", (32, 48), boxes))
  for split, stems in (("train", "000001 000002"), ("val", "000003"),
                       ("trainval", "000001 000002 000003"),
                       ("test", "000004 000005")):
    (devkit / "ImageSets/Main" / f"{split}.txt").write_text(
        stems.replace(" ", "\n") + "\n")
  return devkit


@pytest.fixture(scope="module")
def voc2007(tmp_path_factory):
  """(a tiny VOCdevkit/VOC2007 folder, a TFDS data_dir where the official
  voc/2007 builder prepared it: its download is replaced by the folder)."""
  root = tmp_path_factory.mktemp("voc2007")
  devkit = voc2007_devkit(root / "archives")
  data_dir = str(root / "tfds")
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(tfds.download.DownloadManager, "download_and_extract",
                  lambda self, urls: {k: str(root / "archives") for k in urls})
    tfds.builder("voc/2007", data_dir=data_dir).download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False))
  return str(devkit), data_dir
