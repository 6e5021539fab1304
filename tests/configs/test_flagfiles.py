"""Every flagfile in the repository parses and validates: the pretraining
ones (the paper's included) as run_pretrain.py reads them, the evaluation
ones for each mode whose flags they hold, as run_eval.py and run_curve.py
read them."""

import dataclasses
import glob
import math
import os

from absl import flags
import pytest

from cpc_tf.configs import command_line
from cpc_tf.configs import modes
from cpc_tf.configs import pretrain as config_lib
from helpers import REPO

FLAGFILES = sorted(
    os.path.relpath(path, REPO) for pattern in ("flags/**/*.cfg",
                                                "docs/records/*.cfg")
    for path in glob.glob(os.path.join(REPO, pattern), recursive=True))
# The modes of run_curve.py's methods.
CURVE_MODES = ("efficient", "supervised", "probe")
PRETRAIN_FIELDS = {f.name for f in dataclasses.fields(
    config_lib.PretrainConfig)} | {"train_epochs"}


def names(path):
  with open(os.path.join(REPO, path)) as f:
    return {command_line.flag_name(arg)
            for arg in command_line.flagfile_args(f.read())}


def kind(path):
  flag_names = names(path)
  if "rungs" in flag_names:
    return "ladder"          # run_ladder.py's: tests/evaluation/test_ladder.py
  if flag_names <= PRETRAIN_FIELDS:
    return "pretrain"
  if flag_names <= modes.ALL_FIELDS | {"mode"}:
    return "eval"
  unknown = flag_names - PRETRAIN_FIELDS - modes.ALL_FIELDS
  raise AssertionError(f"{path} sets flags of no script: {sorted(unknown)}")


def test_the_flagfiles_are_all_found():
  kinds = {path: kind(path) for path in FLAGFILES}
  assert kinds["flags/resnet161_imagenet.cfg"] == "pretrain"
  assert kinds["flags/resnet50_imagenet.cfg"] == "pretrain"
  assert kinds["flags/ladder/1_v1.cfg"] == "pretrain"
  assert kinds["flags/cifar10_cpu_eval.cfg"] == "eval"
  assert kinds["flags/readouts/grid.cfg"] == "eval"
  assert kinds["flags/ladder/cifar10.cfg"] == "ladder"


@pytest.mark.parametrize("path", [p for p in FLAGFILES
                                  if kind(p) == "pretrain"])
def test_pretraining_flagfile_validates(path, monkeypatch):
  monkeypatch.chdir(REPO)
  flag_values = flags.FlagValues()
  command_line.define_pretrain_flags(flag_values)
  flag_values(["run_pretrain.py", f"--flagfile={path}"])
  # --train_epochs needs the dataset's size, which ImageNet's TFDS info
  # gives (1,281,167 training images) where ImageNet is prepared.
  steps = {}
  if flag_values.train_epochs:
    assert flag_values.dataset == "imagenet2012"
    steps = dict(train_steps=math.ceil(flag_values.train_epochs * 1281167
                                       / flag_values.batch_size))
  command_line.config_from_flags(config_lib.PretrainConfig, flag_values,
                                 **steps).validate()


@pytest.mark.parametrize("path", [p for p in FLAGFILES if kind(p) == "eval"])
def test_evaluation_flagfile_validates_for_each_of_its_modes(path,
                                                             monkeypatch):
  monkeypatch.chdir(REPO)
  with open(path) as f:
    text = f.read()
  given = names(path) - {"mode"}
  if "mode" in names(path):      # one mode's flagfile, as run_eval.py reads
    used = [command_line.eval_config_from_args(
        [f"--flagfile={path}", "--model_dir=m"])]
  else:                          # several modes' lines, as run_curve.py
    used = [command_line.eval_config_from_args(
        [f"--mode={mode}", *command_line.mode_args(mode, text),
         "--model_dir=m", "--validation_fraction=0.1"])
            for mode in CURVE_MODES if given & set(modes.field_names(mode))]
  assert used
  for config in used:
    config.validate()
  # Every line serves at least one of the modes read.
  assert given <= {name for config in used
                   for name in modes.field_names(config.MODE)}
