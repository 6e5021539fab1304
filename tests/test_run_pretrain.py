"""run_pretrain.py end to end on the prepared CIFAR-10, and its errors."""

import dataclasses
import glob
import os

import pytest
import tensorflow as tf

from cpc_tf import config as config_lib
from cpc_tf import sources
from helpers import REPO, run_script


def run_pretrain(tfds_dir, *args):
  return run_script("run_pretrain.py", "--flagfile=flags/smoke.cfg", *args,
                    env=dict(os.environ, TFDS_DATA_DIR=tfds_dir))


def scalar_steps(event_dir, tag):
  steps = []
  for path in glob.glob(os.path.join(event_dir, "events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      steps += [event.step for v in event.summary.value if v.tag == tag]
  return sorted(steps)


def test_smoke_trains_checkpoints_and_resumes(tmp_path, tfds_dir):
  model_dir = str(tmp_path / "run")
  first = run_pretrain(tfds_dir, f"--model_dir={model_dir}", "--train_steps=6")
  assert first.returncode == 0, first.stderr[-3000:]
  assert "Resumed" not in first.stdout
  checkpoints = os.path.join(model_dir, "checkpoints")
  assert tf.train.latest_checkpoint(checkpoints).endswith("ckpt-6")
  assert scalar_steps(os.path.join(model_dir, "train"), "loss") == [3, 6]
  saved = config_lib.load_config(model_dir)
  assert saved.directions == 2 and saved.train_steps == 6

  # A longer schedule is refused unless asked for explicitly.
  refused = run_pretrain(tfds_dir, f"--model_dir={model_dir}", "--train_steps=9")
  assert refused.returncode != 0
  assert "train_steps: the run has 6, flags say 9" in refused.stderr
  assert "--restart_schedule" in refused.stderr
  assert "Traceback" not in refused.stderr
  second = run_pretrain(tfds_dir, f"--model_dir={model_dir}", "--train_steps=9",
                        "--restart_schedule")
  assert second.returncode == 0, second.stderr[-3000:]
  assert "Resumed from step 6" in second.stdout
  assert tf.train.latest_checkpoint(checkpoints).endswith("ckpt-9")
  assert scalar_steps(os.path.join(model_dir, "train"), "loss") == [3, 6, 9]

  # A different model in the same model_dir is refused, naming the setting.
  third = run_pretrain(tfds_dir, f"--model_dir={model_dir}", "--directions=4")
  assert third.returncode != 0
  assert "directions: checkpoint has 2, flags say 4" in third.stderr
  assert "Traceback" not in third.stderr


def test_steps_per_execution(tmp_path, tfds_dir):
  model_dir = str(tmp_path / "run")
  result = run_pretrain(tfds_dir, f"--model_dir={model_dir}",
                        "--steps_per_execution=3", "--train_steps=6")
  assert result.returncode == 0, result.stderr[-3000:]
  assert tf.train.latest_checkpoint(
      os.path.join(model_dir, "checkpoints")).endswith("ckpt-6")
  assert scalar_steps(os.path.join(model_dir, "train"), "loss") == [3, 6]


@pytest.mark.parametrize("flag,message", [
    ("--patch_size=40", "patch_size 40 is larger than the image size 32"),
    ("--dataset=no_such_dataset", "unknown TFDS dataset 'no_such_dataset'"),
])
def test_bad_flags_give_one_line_errors(tmp_path, tfds_dir, flag, message):
  result = run_pretrain(tfds_dir, f"--model_dir={tmp_path}", flag)
  assert result.returncode != 0
  assert message in result.stderr
  assert "Traceback" not in result.stderr
  assert not os.path.exists(os.path.join(tmp_path, "checkpoints"))


def test_unknown_encoder_is_a_flag_error(tmp_path, tfds_dir):
  result = run_pretrain(tfds_dir, f"--model_dir={tmp_path}", "--encoder=vgg")
  assert result.returncode != 0
  assert "--encoder" in result.stderr and "vgg" in result.stderr
  assert "Traceback" not in result.stderr


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
  assert sources.get_source("cifar10", "train[:1%]", tfds_dir).num_examples == 500


@pytest.mark.parametrize("flagfile", ["smoke.cfg", "cifar10_cpu.cfg",
                                      "cifar10_cpu_session.cfg", "fruit_cpu.cfg"])
def test_pretraining_flagfiles_give_valid_configs(flagfile, monkeypatch):
  import run_pretrain  # pylint: disable=g-import-not-at-top
  monkeypatch.chdir(REPO)   # flagfiles name the flagfiles they build on from here
  try:
    run_pretrain.FLAGS(["run_pretrain.py", f"--flagfile=flags/{flagfile}"])
    config = run_pretrain.config_from_flags()
  finally:
    run_pretrain.FLAGS.unparse_flags()
  config.validate()
  if flagfile == "cifar10_cpu_session.cfg":
    # It builds on cifar10_cpu.cfg and overrides what it names.
    assert (config.grid.grid_size, config.encoder_width) == (5, 32)
    assert (config.color_drop, config.pa_color, config.small_map_matmul) == (
        0.5, False, False)
