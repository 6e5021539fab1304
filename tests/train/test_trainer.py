"""Pretraining run mechanics: schedule, checkpoints on ram://, NaN stop."""

import dataclasses
import glob
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from cpc_tf.train import checkpoints
from cpc_tf.configs import pretrain as config_lib
from cpc_tf.serving import encoder_dir
from cpc_tf.train import trainer
from helpers import tiny_config

TINY = tiny_config(encoder_blocks=(1,), batch_size=4, train_steps=4)


def test_warmup_then_cosine_to_zero():
  config = dataclasses.replace(TINY, learning_rate=1e-3, warmup_steps=10,
                               train_steps=110)
  schedule = trainer.learning_rate_schedule(config)
  assert float(schedule(0)) == pytest.approx(0.0)
  assert float(schedule(5)) == pytest.approx(5e-4)
  assert float(schedule(10)) == pytest.approx(1e-3)
  assert float(schedule(60)) == pytest.approx(5e-4, rel=1e-3)
  assert float(schedule(110)) == pytest.approx(0.0, abs=1e-9)
  no_warmup = trainer.learning_rate_schedule(
      dataclasses.replace(config, warmup_steps=0))
  assert float(no_warmup(0)) == pytest.approx(1e-3)


def test_model_dir_on_ram_filesystem_trains_and_resumes():
  """ram:// stands in for gs://: every file goes through tf.io.gfile."""
  config = dataclasses.replace(TINY, model_dir="ram://cpc_tf_test/run")
  model = trainer.pretrain(config)
  assert int(model.optimizer.iterations.numpy()) == 4
  assert tf.io.gfile.exists("ram://cpc_tf_test/run/config.json")
  assert tf.io.gfile.glob("ram://cpc_tf_test/run/train/events.out.tfevents.*")
  latest = tf.train.latest_checkpoint("ram://cpc_tf_test/run/checkpoints")
  assert latest.endswith("ckpt-4")
  weights = model.get_weights()

  resumed = trainer.pretrain(dataclasses.replace(config, train_steps=6,
                                                  restart_schedule=True))
  assert int(resumed.optimizer.iterations.numpy()) == 6
  assert tf.train.latest_checkpoint(
      "ram://cpc_tf_test/run/checkpoints").endswith("ckpt-6")
  # It started from the saved weights (Adam moved them, but not far).
  fresh = trainer.build_model(config).get_weights()
  distance = lambda a, b: sum(np.abs(x - y).sum() for x, y in zip(a, b))
  assert distance(resumed.get_weights(), weights) < distance(fresh, weights)


def logged_learning_rates(model_dir):
  """{step: learning rate} from the run's TensorBoard events."""
  rates = {}
  for path in glob.glob(os.path.join(model_dir, "train",
                                    "events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag == "learning_rate":
          rates[event.step] = float(tf.make_ndarray(value.tensor))
  return rates


def test_resumed_run_follows_the_uninterrupted_schedule(tmp_path):
  config = dataclasses.replace(TINY, model_dir=str(tmp_path / "whole"),
                               train_steps=6, warmup_steps=2, log_every=1,
                               learning_rate=1e-2)
  trainer.pretrain(config)
  whole = logged_learning_rates(config.model_dir)
  schedule = trainer.learning_rate_schedule(config)
  assert sorted(whole) == [1, 2, 3, 4, 5, 6]
  for step, rate in whole.items():
    assert rate == pytest.approx(float(schedule(step)), rel=1e-6, abs=1e-12)

  # The same run stopped at step 2 (its second checkpoint) and resumed.
  resumed_dir = str(tmp_path / "resumed")
  shutil.copytree(config.model_dir, resumed_dir,
                  ignore=shutil.ignore_patterns("train"))
  tf.compat.v1.train.update_checkpoint_state(
      os.path.join(resumed_dir, "checkpoints"), "ckpt-2")
  trainer.pretrain(dataclasses.replace(config, model_dir=resumed_dir))
  resumed = logged_learning_rates(resumed_dir)
  assert sorted(resumed) == [3, 4, 5, 6]
  for step, rate in resumed.items():
    assert rate == pytest.approx(whole[step], rel=1e-6, abs=1e-12)


def test_resume_with_another_schedule_is_refused_or_restarted(tmp_path):
  config = dataclasses.replace(TINY, model_dir=str(tmp_path), train_steps=4,
                               log_every=1)
  trainer.pretrain(config)
  for change in (dict(train_steps=8), dict(learning_rate=1e-3),
                 dict(warmup_steps=1)):
    name = next(iter(change))
    with pytest.raises(config_lib.ConfigError,
                       match=f"{name}: the run has .*--restart_schedule"):
      trainer.pretrain(dataclasses.replace(config, **change))
  longer = dataclasses.replace(config, train_steps=8, restart_schedule=True)
  model = trainer.pretrain(longer)
  assert int(model.optimizer.iterations.numpy()) == 8
  # From step 4 on, the rate is the 8-step schedule's (a warm restart).
  rates = logged_learning_rates(config.model_dir)
  new_schedule = trainer.learning_rate_schedule(longer)
  for step in (5, 6, 7, 8):
    assert rates[step] == pytest.approx(float(new_schedule(step)), abs=1e-12)
  assert rates[5] > rates[4]


def test_precision_changes_on_resume_unless_the_loss_scale_differs(tmp_path):
  config = dataclasses.replace(TINY, model_dir=str(tmp_path), train_steps=2)
  trainer.pretrain(config)
  resumed = trainer.pretrain(dataclasses.replace(
      config, precision="bfloat16", train_steps=4, restart_schedule=True))
  assert int(resumed.optimizer.iterations.numpy()) == 4
  with pytest.raises(
      config_lib.ConfigError,
      match="loss_scaling: checkpoint has False, flags say True"):
    trainer.pretrain(dataclasses.replace(config, precision="mixed_float16"))


def test_non_finite_loss_stops_without_saving(tmp_path):
  config = dataclasses.replace(TINY, model_dir=str(tmp_path))
  model = trainer.build_model(config)
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


def test_an_encoder_only_folder_is_evaluated_not_resumed(tmp_path):
  config = dataclasses.replace(TINY, model_dir=str(tmp_path / "run"),
                               train_steps=2)
  model = trainer.pretrain(config)
  released = dataclasses.replace(config, model_dir=str(tmp_path / "released"))
  encoder_dir.save(model.encoder, released, step=2,
                   trained_by={"mode": "pretrain",
                               "model_dir": config.model_dir, "step": 2})
  encoder_dir.restore(released)          # evaluation reads it
  with pytest.raises(config_lib.ConfigError,
                     match="holds the encoder only: it can be evaluated"):
    trainer.pretrain(dataclasses.replace(released, train_steps=4,
                                          restart_schedule=True))
