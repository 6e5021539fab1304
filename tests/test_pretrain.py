"""Pretraining run mechanics: schedule, checkpoints on ram://, NaN stop."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from conftest import TFDS_DIR
from cpc_tf import checkpoints
from cpc_tf import config as config_lib
from cpc_tf import pretrain

TINY = config_lib.PretrainConfig(
    split="train[:64]", data_dir=TFDS_DIR, image_size=16, patch_size=8,
    patch_stride=4, encoder_width=8, encoder_blocks=(1,), context_dim=8,
    target_dim=8, steps_to_ignore=0, steps_to_predict=1, batch_size=4,
    train_steps=4, checkpoint_every=2, log_every=2, jit_compile=False)


def test_warmup_then_cosine_to_zero():
  config = dataclasses.replace(TINY, learning_rate=1e-3, warmup_steps=10,
                               train_steps=110)
  schedule = pretrain.learning_rate_schedule(config)
  assert float(schedule(0)) == pytest.approx(0.0)
  assert float(schedule(5)) == pytest.approx(5e-4)
  assert float(schedule(10)) == pytest.approx(1e-3)
  assert float(schedule(60)) == pytest.approx(5e-4, rel=1e-3)
  assert float(schedule(110)) == pytest.approx(0.0, abs=1e-9)
  no_warmup = pretrain.learning_rate_schedule(
      dataclasses.replace(config, warmup_steps=0))
  assert float(no_warmup(0)) == pytest.approx(1e-3)


def test_model_dir_on_ram_filesystem_trains_and_resumes():
  """gs:// stands in for ram://: every file goes through tf.io.gfile."""
  config = dataclasses.replace(TINY, model_dir="ram://cpc_tf_test/run")
  model = pretrain.pretrain(config)
  assert int(model.optimizer.iterations.numpy()) == 4
  assert tf.io.gfile.exists("ram://cpc_tf_test/run/config.json")
  assert tf.io.gfile.glob("ram://cpc_tf_test/run/train/events.out.tfevents.*")
  latest = tf.train.latest_checkpoint("ram://cpc_tf_test/run/checkpoints")
  assert latest.endswith("ckpt-4")
  weights = model.get_weights()

  resumed = pretrain.pretrain(dataclasses.replace(config, train_steps=6))
  assert int(resumed.optimizer.iterations.numpy()) == 6
  assert tf.train.latest_checkpoint(
      "ram://cpc_tf_test/run/checkpoints").endswith("ckpt-6")
  # It started from the saved weights (Adam moved them, but not far).
  fresh = pretrain.build_model(config).get_weights()
  distance = lambda a, b: sum(np.abs(x - y).sum() for x, y in zip(a, b))
  assert distance(resumed.get_weights(), weights) < distance(fresh, weights)


def test_non_finite_loss_stops_without_saving(tmp_path):
  config = dataclasses.replace(TINY, model_dir=str(tmp_path))
  model = pretrain.build_model(config)
  saver = checkpoints.Checkpoints(str(tmp_path), model, every_steps=1)
  callback = checkpoints.CheckpointCallback(saver)
  callback.set_model(model)
  model.optimizer.iterations.assign(1)
  callback.on_train_batch_end(0, {"loss": 1.0})
  good = saver.manager.latest_checkpoint
  assert good.endswith("ckpt-1")
  model.optimizer.iterations.assign(2)
  with pytest.raises(checkpoints.NonFiniteLossError,
                     match=r"loss became nan at step 2.*ckpt-1"):
    callback.on_train_batch_end(1, {"loss": float("nan")})
  assert saver.manager.latest_checkpoint == good
