"""run_eval.py: its flags (one per setting of the mode configs, each mode
taking only its own), eval flagfiles split by mode, and one smoke run."""

import json
import os

from absl import flags
import pytest

from cpc_tf.configs import pretrain as config_lib
from cpc_tf.configs import modes
from cpc_tf.configs import command_line
from helpers import REPO, run_script, start_script


# Lines a healthy CPU run must not print: TF's CUDA probe, a cached dataset
# read in part, checkpoint sharding (INFO).
NOISE = ("failed call to cuInit", "did not fully read the dataset",
         "Sharding callback")


def parse(*args):
  flag_values = flags.FlagValues()
  command_line.define_eval_flags(flag_values)
  flag_values(["run_eval.py", "--model_dir=m", *args])
  return command_line.eval_config_from_flags(flag_values)


def test_flags_become_the_config_of_the_mode():
  probe = parse("--mode=probe", "--probe_penalties=0.1,0",
                "--validation_fraction=0.1", "--random_init")
  assert probe == modes.ProbeConfig(
      model_dir="m", probe_penalties=(0.1, 0.0), validation_fraction=0.1,
      random_init=True)
  supervised = parse("--mode=supervised", "--pixel_blocks=1,1")
  assert supervised.pixel_blocks == (1, 1) and supervised.pixel_stem is None
  assert parse("--mode=efficient") == modes.EfficientConfig(model_dir="m")


@pytest.mark.parametrize("args,message", [
    (["--mode=supervised", "--random_init"],
     "--random_init does not apply to --mode=supervised"),
    (["--mode=linear", "--dropout=0.2"], "--dropout does not apply"),
    (["--mode=detection", "--label_fraction=0.1"],
     "--label_fraction does not apply to --mode=detection"),
    (["--mode=probe", "--nofine_tune"], "--fine_tune does not apply"),
])
def test_a_flag_of_another_mode_is_refused(args, message):
  with pytest.raises(config_lib.ConfigError, match=message):
    parse(*args)


def test_flags_from_a_flagfile_count_as_given(tmp_path):
  flagfile = tmp_path / "eval.cfg"
  flagfile.write_text("--head_blocks=2\n")
  with pytest.raises(config_lib.ConfigError, match="--head_blocks does not"):
    parse("--mode=linear", f"--flagfile={flagfile}")


def test_an_eval_flagfile_gives_each_mode_its_own_flags(monkeypatch):
  monkeypatch.chdir(REPO)
  text = "--flagfile=flags/cifar10_cpu_eval.cfg\n--train_steps=300\n"
  efficient = command_line.mode_args("efficient", text)
  supervised = command_line.mode_args("supervised", text)
  assert "--head_blocks=2" in efficient and "--pixel_width=32" in supervised
  assert not any(arg.startswith("--pixel") for arg in efficient)
  assert not any(arg.startswith(("--head", "--fine_tune"))
                 for arg in supervised)
  assert "--patience=2" in efficient and "--patience=2" in supervised
  assert efficient[-1] == supervised[-1] == "--train_steps=300"
  assert command_line.mode_args("efficient",
                                "--nofine_tune") == ["--nofine_tune"]
  with pytest.raises(ValueError, match="'--train_stpes=3' is not a run_eval"):
    command_line.mode_args("efficient", "--train_stpes=3")


@pytest.mark.slow
def test_smoke_run_appends_its_record(pretrained, tfds_dir, tmp_path):
  config, _ = pretrained
  results = tmp_path / "results.jsonl"
  # A refused flag, checked beside the run (start-up is most of both).
  refused = start_script("run_eval.py", f"--model_dir={config.model_dir}",
                         "--mode=linear", "--dropout=0.1")
  # The README's first command's evaluation flagfile, shortened.
  result = run_script(
      "run_eval.py", "--flagfile=flags/smoke_eval.cfg",
      f"--model_dir={config.model_dir}", "--train_steps=2",
      f"--results_file={results}", env=dict(os.environ, TFDS_DATA_DIR=tfds_dir))
  assert result.returncode == 0, result.stderr[-3000:]
  assert ("A.3 linear probe on cifar10 test[:256] with 100% of the labels"
          in result.stdout)
  assert not [line for line in result.stderr.splitlines()
              if any(noise in line for noise in NOISE)
              or line.startswith("E")]
  record = json.loads(results.read_text())
  assert record["mode"] == "linear" and record["train_steps"] == 2
  _, stderr = refused.communicate(timeout=600)
  assert refused.returncode != 0 and "Traceback" not in stderr
  assert "run_eval.py: error: --dropout does not apply" in stderr
