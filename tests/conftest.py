"""Test set-up: two logical CPU devices, so MirroredStrategy has two replicas."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # pylint: disable=g-import-not-at-top
import tensorflow as tf

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
