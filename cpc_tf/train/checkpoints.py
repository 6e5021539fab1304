"""Checkpoints of model and optimizer in model_dir, saved every N steps."""

import math
import os
import signal
import threading
from typing import Optional

import keras
import tensorflow as tf
from absl import logging


def checkpoint_dir(model_dir: str) -> str:
  return os.path.join(model_dir, "checkpoints")


def latest(model_dir: str) -> Optional[str]:
  """The newest checkpoint in model_dir, or None."""
  return tf.train.latest_checkpoint(checkpoint_dir(model_dir))


class Checkpoints:
  """tf.train.CheckpointManager over the model and its optimizer.

  Works on any tf.io.gfile path (gs://, ram://). TF writes the data and
  index files before it updates the `checkpoint` state file, so a run killed
  mid-write still finds the previous checkpoint. Restores from
  model_dir/checkpoints and saves to write_dir/checkpoints (write_dir is
  model_dir except on non-chief workers). Whether a step saves depends only
  on the step, so all workers of a run save together.
  """

  def __init__(self, model_dir: str, model: keras.Model, every_steps: int,
               max_to_keep: int = 3, write_dir: Optional[str] = None):
    self.directory = checkpoint_dir(model_dir)
    self.every_steps = every_steps
    self.saved_step = 0
    self.checkpoint = tf.train.Checkpoint(model=model,
                                          optimizer=model.optimizer)
    self.manager = tf.train.CheckpointManager(
        self.checkpoint, checkpoint_dir(write_dir or model_dir),
        max_to_keep=max_to_keep)

  def restore_latest(self) -> int:
    """Restores the newest checkpoint, if any; returns the step it holds."""
    path = tf.train.latest_checkpoint(self.directory)
    if path is None:
      return 0
    self.checkpoint.restore(path).assert_existing_objects_matched()
    step = int(self.checkpoint.optimizer.iterations.numpy())
    self.saved_step = step
    logging.info("Resumed from step %d (%s)", step, path)
    print(f"Resumed from step {step} ({path})", flush=True)
    return step

  def save(self, force: bool = False):
    """Saves when the step passes a multiple of `every_steps` (or, if forced,
    unless this step is saved already)."""
    step = int(self.checkpoint.optimizer.iterations.numpy())
    due = step // self.every_steps > self.saved_step // self.every_steps
    if step == self.saved_step or not (force or due):
      return self.manager.latest_checkpoint
    self.saved_step = step
    return self.manager.save(checkpoint_number=step)


class NonFiniteLossError(RuntimeError):
  """Training produced a NaN or Inf loss."""


class Preemption:
  """Records a SIGTERM (what Cloud TPU and spot VMs send before preemption)
  so that training can checkpoint after the current step and stop.

  Keras 3's BackupAndRestore saves on a schedule but does not react to
  signals, and tf.distribute's PreemptionCheckpointHandler needs a custom
  training loop, so fit() gets this small hook instead.
  """

  def __init__(self):
    self.signal_received = None
    self._previous = None

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._record)
    return self

  def __exit__(self, *exc_info):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)

  def _record(self, signum, frame):
    del frame
    self.signal_received = signum


class CheckpointCallback(keras.callbacks.Callback):
  """Saves every `every_steps` optimizer steps and at the end of training;
  stops at the first non-finite loss without saving the broken weights, and
  after a SIGTERM with a checkpoint of the step just finished."""

  def __init__(self, checkpoints: Checkpoints, preemption: Preemption = None):
    super().__init__()
    self.checkpoints = checkpoints
    self.preemption = preemption or Preemption()

  def on_train_batch_end(self, batch, logs=None):
    loss = (logs or {}).get("loss")
    step = int(self.model.optimizer.iterations.numpy())
    if loss is not None and not math.isfinite(float(loss)):
      raise NonFiniteLossError(
          f"loss became {float(loss)} at step {step}; training stopped. The "
          f"last good checkpoint is kept: "
          f"{self.checkpoints.manager.latest_checkpoint}")
    if self.preemption.signal_received is not None:
      path = self.checkpoints.save(force=True)
      self.model.stop_training = True
      print(f"\nSIGTERM received: saved step {step} to {path}; run the same "
            "command to resume.", flush=True)
      return
    self.checkpoints.save()

  def on_train_end(self, logs=None):
    self.checkpoints.save(force=True)
