"""Preemptible runs: SIGKILL at random moments and mid-save, then SIGTERM;
the resumed run ends where an uninterrupted one does."""

import pytest
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf

from helpers import REPO

STEPS = 20
# The smoke model with every per-patch augmentation, a checkpoint every step
# (so that kills land during checkpoint writes too) and deterministic input.
COMMAND = [
    sys.executable, os.path.join(REPO, "run_pretrain.py"),
    f"--flagfile={os.path.join(REPO, 'flags', 'smoke.cfg')}", "--deterministic",
    "--patch_jitter=2", "--flip", "--color_drop=0.5", "--pa_geometric",
    "--pa_elastic", "--pa_color", "--checkpoint_every=1", "--log_every=5",
    f"--train_steps={STEPS}"]


def start(model_dir, tfds_dir, log_path, *args):
  env = dict(os.environ, TFDS_DATA_DIR=tfds_dir)
  with open(log_path, "w") as log:
    return subprocess.Popen([*COMMAND, f"--model_dir={model_dir}", *args],
                            cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT)


def checkpoint_values(model_dir):
  """Every saved variable (model and optimizer) of the newest checkpoint."""
  reader = tf.train.load_checkpoint(os.path.join(model_dir, "checkpoints"))
  return {name: reader.get_tensor(name)
          for name in reader.get_variable_to_shape_map()
          if name.startswith(("model/", "optimizer/"))}


def tail(log_path):
  """The end of a run's log, for a failed assertion's message."""
  return log_path.read_text()[-3000:]


def wait_for(path, process, timeout=120):
  deadline = time.time() + timeout
  while not os.path.exists(path):
    assert process.poll() is None, "the run ended before it got there"
    assert time.time() < deadline, f"{path} did not appear"
    time.sleep(0.02)


def wait_for_text(log_path, text, process, timeout=120):
  deadline = time.time() + timeout
  while text not in log_path.read_text():
    assert process.poll() is None, "the run ended before it got there"
    assert time.time() < deadline, f"{text!r} did not appear in {log_path}"
    time.sleep(0.02)


@pytest.mark.slow
def test_sigkill_and_sigterm_then_resume_equals_uninterrupted(tmp_path,
                                                              tfds_dir):
  # The uninterrupted reference runs beside the interrupted runs.
  reference_dir = str(tmp_path / "reference")
  reference = start(reference_dir, tfds_dir, tmp_path / "reference.log")
  model_dir = str(tmp_path / "interrupted")
  checkpoints = os.path.join(model_dir, "checkpoints")
  rng = np.random.default_rng(1)

  def latest_step():
    latest = tf.train.latest_checkpoint(checkpoints)
    return int(latest.rsplit("-", 1)[1]) if latest else 0

  # A kill at a random time (start-up included), at the latest when the
  # checkpoint six steps on appears (so that even a fast machine never
  # finishes the run).
  run = start(model_dir, tfds_dir, tmp_path / "killed0.log")
  deadline = time.time() + rng.uniform(2, 15)
  stop_at = os.path.join(checkpoints, f"ckpt-{latest_step() + 6}.index")
  while time.time() < deadline and not os.path.exists(stop_at):
    time.sleep(0.02)
  run.send_signal(signal.SIGKILL)
  run.wait(timeout=60)
  # A kill the moment the index of the checkpoint three steps on appears,
  # i.e. in the middle of saving it; that leaves at least two steps saved.
  before = latest_step()
  run = start(model_dir, tfds_dir, tmp_path / "killed1.log")
  wait_for(os.path.join(checkpoints, f"ckpt-{before + 3}.index"), run)
  run.send_signal(signal.SIGKILL)
  run.wait(timeout=60)
  assert before + 2 <= latest_step() < STEPS

  # SIGTERM (preemption) with no checkpoint on the schedule: the run saves
  # the step it stopped at and exits cleanly.
  before = latest_step()
  run = start(model_dir, tfds_dir, tmp_path / "sigterm.log",
              "--checkpoint_every=100000")
  # Keras prints its second epoch's header after log_every (5) steps.
  wait_for_text(tmp_path / "sigterm.log", "Epoch 2/", run)
  run.send_signal(signal.SIGTERM)
  assert run.wait(timeout=120) == 0, tail(tmp_path / "sigterm.log")
  log = (tmp_path / "sigterm.log").read_text()
  saved = re.search(r"SIGTERM received: saved step (\d+)", log)
  assert saved, log[-3000:]
  stopped_at = int(saved.group(1))
  assert before < stopped_at < STEPS and latest_step() == stopped_at
  assert reference.wait(timeout=600) == 0, tail(tmp_path / "reference.log")

  final = start(model_dir, tfds_dir, tmp_path / "final.log")
  assert final.wait(timeout=600) == 0, tail(tmp_path / "final.log")
  resumed = re.search(r"Resumed from step (\d+)",
                      (tmp_path / "final.log").read_text())
  assert resumed and int(resumed.group(1)) == stopped_at
  assert latest_step() == STEPS

  expected = checkpoint_values(reference_dir)
  actual = checkpoint_values(model_dir)
  assert expected.keys() == actual.keys() and len(expected) > 50
  for name, value in expected.items():
    np.testing.assert_array_equal(actual[name], value, err_msg=name)
