"""Test set-up: two logical CPU devices, so MirroredStrategy has two replicas."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dataclasses  # pylint: disable=g-import-not-at-top

import pytest
import tensorflow as tf

from cpc_tf import config as config_lib
from cpc_tf import pretrain

_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    _cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(REPO), "shared")
TFDS_DIR = os.environ.get("TFDS_DATA_DIR", os.path.join(SHARED, "tfds"))


@pytest.fixture
def tfds_dir():
  if not os.path.isdir(os.path.join(TFDS_DIR, "cifar10")):
    pytest.fail(f"prepared cifar10 not found under {TFDS_DIR} (see ../shared)")
  return TFDS_DIR


# A CPC model small enough to pretrain in seconds, for the evaluation tests.
TINY = config_lib.PretrainConfig(
    split="train[:64]", image_size=16, patch_size=8, patch_stride=4,
    encoder_width=8, encoder_blocks=(1, 1), context_dim=8, target_dim=8,
    steps_to_ignore=0, steps_to_predict=1, batch_size=8, train_steps=2,
    checkpoint_every=2, log_every=2, jit_compile=False)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
  """(TINY pretrained in a fresh model_dir, its encoder's weights)."""
  model_dir = str(tmp_path_factory.mktemp("pretrained"))
  config = dataclasses.replace(TINY, model_dir=model_dir, data_dir=TFDS_DIR)
  model = pretrain.pretrain(config)
  return config, model.encoder.get_weights()
