"""run_pretrain.py end to end on the prepared CIFAR-10, and its errors."""

import dataclasses
import glob
import os

from absl import flags
import pytest
import tensorflow as tf

from cpc_tf.configs import pretrain as config_lib
from cpc_tf.serving import encoder_dir
from cpc_tf.train import trainer
from cpc_tf.configs import command_line
from cpc_tf.data import sources
from helpers import REPO, run_script, tiny_config


def run_pretrain(tfds_dir, *args):
  return run_script("run_pretrain.py", "--flagfile=flags/smoke.cfg", *args,
                    env=dict(os.environ, TFDS_DATA_DIR=tfds_dir))


def scalar_steps(event_dir, tag):
  steps = []
  for path in glob.glob(os.path.join(event_dir, "events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      steps += [event.step for v in event.summary.value if v.tag == tag]
  return sorted(steps)


@pytest.mark.slow
def test_smoke_trains_checkpoints_and_refuses_another_schedule(
    tmp_path, tfds_dir, monkeypatch):
  model_dir = str(tmp_path / "run")
  first = run_pretrain(tfds_dir, f"--model_dir={model_dir}", "--train_steps=6")
  assert first.returncode == 0, first.stderr[-3000:]
  assert "Resumed" not in first.stdout
  # A healthy CPU run prints no error (TF's CUDA probe), no warning of a
  # cached dataset read in part, no INFO line per checkpoint.
  assert not [line for line in first.stderr.splitlines()
              if line.startswith("E") or "did not fully read" in line
              or "Sharding callback" in line]
  checkpoints = os.path.join(model_dir, "checkpoints")
  assert tf.train.latest_checkpoint(checkpoints).endswith("ckpt-6")
  assert scalar_steps(os.path.join(model_dir, "train"), "loss") == [3, 6]
  saved = config_lib.load_config(model_dir)
  assert saved.directions == 2 and saved.train_steps == 6

  # A longer schedule is refused unless asked for explicitly.
  refused = run_pretrain(tfds_dir, f"--model_dir={model_dir}",
                         "--train_steps=9")
  assert refused.returncode != 0
  assert "train_steps: the run has 6, flags say 9" in refused.stderr
  assert "--restart_schedule" in refused.stderr
  assert "Traceback" not in refused.stderr

  # In-process: the flags the message names reach the config (what they do
  # on resume is tested in test_pretrain.py), and a changed architecture is
  # refused before any work.
  monkeypatch.chdir(REPO)
  assert parse_flags("--restart_schedule").restart_schedule
  with pytest.raises(config_lib.ConfigError,
                     match="directions: checkpoint has 2, flags say 4"):
    trainer.pretrain(dataclasses.replace(
        parse_flags("--directions=4"), model_dir=model_dir, data_dir=tfds_dir))


def test_steps_per_execution(tmp_path):
  model_dir = str(tmp_path / "run")
  trainer.pretrain(tiny_config(model_dir=model_dir, steps_per_execution=3,
                                train_steps=6, checkpoint_every=6,
                                log_every=3))
  assert tf.train.latest_checkpoint(
      os.path.join(model_dir, "checkpoints")).endswith("ckpt-6")
  assert scalar_steps(os.path.join(model_dir, "train"), "loss") == [3, 6]


def parse_flags(*args):
  flag_values = flags.FlagValues()
  command_line.define_pretrain_flags(flag_values)
  flag_values(["run_pretrain.py", "--flagfile=flags/smoke.cfg", *args])
  return command_line.pretrain_config_from_flags(flag_values)


@pytest.mark.parametrize("flag,error,message", [
    ("--patch_size=40", config_lib.ConfigError,
     "patch_size 40 is larger than the image size 32"),
    ("--dataset=no_such_dataset", sources.DataError,
     "unknown TFDS dataset 'no_such_dataset'"),
])
def test_bad_flags_are_named_before_any_work(tmp_path, tfds_dir, monkeypatch,
                                             flag, error, message):
  monkeypatch.chdir(REPO)
  config = dataclasses.replace(parse_flags(flag), model_dir=str(tmp_path),
                               data_dir=tfds_dir)
  with pytest.raises(error, match=message):
    trainer.pretrain(config)
  assert not os.path.exists(os.path.join(tmp_path, "checkpoints"))


def test_unknown_encoder_is_named(monkeypatch):
  monkeypatch.chdir(REPO)
  with pytest.raises(config_lib.ConfigError,
                     match="--encoder must be one of .*got 'vgg'"):
    parse_flags("--encoder=vgg").validate()


@pytest.mark.parametrize("changes,message", [
    (dict(steps_to_predict=5, patch_stride=8), "4x4 patch grid is too small"),
    (dict(patch_stride=5), "do not tile"),
    (dict(warmup_steps=2000), "warmup_steps (2000) must be smaller"),
    (dict(min_crop_area=0.0), "min_crop_area"),
    (dict(batch_size=0), "batch_size must be positive"),
    (dict(steps_per_execution=2, log_every=3),
     "log_every (3) must be a multiple of steps_per_execution (2)"),
])
def test_config_validation(changes, message):
  config = dataclasses.replace(config_lib.PretrainConfig(), **changes)
  with pytest.raises(config_lib.ConfigError, match=message.replace("(", r"\(")
                     .replace(")", r"\)")):
    config.validate()


def test_missing_data_dir_and_split(tmp_path, tfds_dir):
  with pytest.raises(sources.DataError, match="does not exist"):
    sources.get_source("cifar10", "train", str(tmp_path / "nowhere"))
  with pytest.raises(sources.DataError, match="is not prepared"):
    sources.get_source("mnist", "train", tfds_dir)
  with pytest.raises(sources.DataError, match="split 'valid'"):
    sources.get_source("cifar10", "valid", tfds_dir)
  one_percent = sources.get_source("cifar10", "train[:1%]", tfds_dir)
  assert one_percent.num_examples == 500


@pytest.mark.parametrize("flagfile", ["smoke.cfg", "cifar10_cpu.cfg",
                                      "cifar10_cpu_session.cfg",
                                      "cifar10_cpu_grid4.cfg", "fruit_cpu.cfg"])
def test_pretraining_flagfiles_give_valid_configs(flagfile, monkeypatch):
  # Flagfiles name the flagfiles they build on from the repository root.
  monkeypatch.chdir(REPO)
  # run_pretrain.py's flags, parsed and validated (model_dir left unset).
  config = encoder_dir.from_flagfile(f"flags/{flagfile}")
  if flagfile == "cifar10_cpu_session.cfg":
    # It builds on cifar10_cpu.cfg and overrides what it names.
    assert (config.grid.grid_size, config.encoder_width) == (5, 32)
    assert (config.color_drop, config.pa_color, config.small_map_matmul) == (
        0.5, False, False)
  if flagfile == "cifar10_cpu_grid4.cfg":
    # The session recipe on a non-overlapping 4x4 grid, offsets 1 and 2.
    assert (config.grid.grid_size, config.patch_stride) == (4, 8)
    assert (config.steps_to_ignore, config.steps_to_predict) == (0, 2)
    assert (config.color_drop, config.encoder_width) == (0.5, 32)
