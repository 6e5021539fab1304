"""One training step on 1 vs 2 replicas for the same global batch."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from cpc_tf.configs import pretrain as config_lib
from cpc_tf.train import trainer
from helpers import tiny_config

CONFIG = tiny_config(patch_size=4, directions=2, steps_to_predict=2,
                     learning_rate=1e-2, train_steps=10)


def one_step(strategy, initial_weights, patches, config=CONFIG):
  """Loss and weights after one step. Plain SGD with rate 1 makes the update
  the gradient itself: Adam's first step, lr * g / (|g| + eps), turns float
  noise in gradients that are zero in theory (e.g. the target projection's
  bias, to which the softmax is invariant) into visible differences."""
  with strategy.scope():
    model = trainer.build_model(config)
    model.compile(optimizer=keras.optimizers.SGD(1.0), jit_compile=False)
  model.set_weights(initial_weights)
  dataset = tf.data.Dataset.from_tensors(patches)
  history = model.fit(dataset, epochs=1, steps_per_epoch=1, verbose=0)
  return history.history["loss"][0], model.get_weights()


@pytest.fixture(scope="module")
def start():
  """Patches of one global batch and the initial weights every run starts
  from."""
  tf.keras.utils.set_random_seed(0)
  patches = np.random.default_rng(0).random(
      (8, 4, 4, 4, 4, 3)).astype(np.float32)
  return patches, trainer.build_model(CONFIG).get_weights()


@pytest.fixture(scope="module")
def mirrored():
  devices = tf.config.list_logical_devices("CPU")
  assert len(devices) >= 2, "conftest should give two logical CPUs"
  strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  assert strategy.num_replicas_in_sync == 2
  return strategy


@pytest.fixture(scope="module")
def mirrored_step(start, mirrored):
  """Loss and weights after one step on two replicas (global negatives)."""
  patches, initial = start
  return one_step(mirrored, initial, patches)


@pytest.mark.slow
def test_two_replicas_match_one_device(start, mirrored_step):
  patches, initial = start
  single_loss, single_weights = one_step(
      tf.distribute.OneDeviceStrategy("/cpu:0"), initial, patches)
  mirrored_loss, mirrored_weights = mirrored_step

  assert mirrored_loss == pytest.approx(single_loss, rel=1e-5)
  moved = 0
  for before, a, b in zip(initial, single_weights, mirrored_weights):
    np.testing.assert_allclose(a - before, b - before, rtol=1e-3, atol=1e-6)
    moved += not np.allclose(before, a)
  assert moved > len(initial) // 2   # the step did update the weights


@pytest.mark.slow
def test_local_negatives_differ_from_global_on_two_replicas(
    start, mirrored, mirrored_step):
  """Sanity check of the comparison above: with per-replica negatives the
  loss is lower (fewer negatives), so the equality is not automatic."""
  patches, initial = start
  local_loss, _ = one_step(
      mirrored, initial, patches,
      dataclasses.replace(CONFIG, negatives="local"))
  assert local_loss < mirrored_step[0] - 0.1


def test_batch_must_divide_over_replicas(mirrored):
  config = dataclasses.replace(CONFIG, batch_size=7, strategy="mirrored")
  with pytest.raises(config_lib.ConfigError, match="batch_size 7 is not "
                     "divisible by the 2 replicas"):
    trainer.check_replicas(config, mirrored)
