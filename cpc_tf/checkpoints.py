"""Checkpoints of model and optimizer in model_dir, saved every N steps."""

import math
import os

import keras
import tensorflow as tf
from absl import logging


class Checkpoints:
  """tf.train.CheckpointManager over the model and its optimizer.

  Works on any tf.io.gfile path (gs://, ram://). TF writes the data and
  index files before it updates the `checkpoint` state file, so a run killed
  mid-write still finds the previous checkpoint.
  """

  def __init__(self, model_dir: str, model: keras.Model, every_steps: int,
               max_to_keep: int = 3):
    self.checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    self.manager = tf.train.CheckpointManager(
        self.checkpoint, os.path.join(model_dir, "checkpoints"),
        max_to_keep=max_to_keep, step_counter=model.optimizer.iterations,
        checkpoint_interval=every_steps)

  def restore_latest(self) -> int:
    """Restores the newest checkpoint, if any; returns the step it holds."""
    path = self.manager.latest_checkpoint
    if path is None:
      return 0
    self.checkpoint.restore(path).assert_existing_objects_matched()
    step = int(self.checkpoint.optimizer.iterations.numpy())
    logging.info("Resumed from step %d (%s)", step, path)
    print(f"Resumed from step {step} ({path})", flush=True)
    return step

  def save(self, force: bool = False):
    """Saves if `every_steps` have passed since the last save (or if forced
    and the newest checkpoint is not of this step already)."""
    step = int(self.checkpoint.optimizer.iterations.numpy())
    latest = self.manager.latest_checkpoint
    if force and latest and latest.endswith(f"-{step}"):
      return latest
    return self.manager.save(checkpoint_number=step, check_interval=not force)


class NonFiniteLossError(RuntimeError):
  """Training produced a NaN or Inf loss."""


class CheckpointCallback(keras.callbacks.Callback):
  """Saves every `every_steps` optimizer steps and at the end of training;
  stops at the first non-finite loss without saving the broken weights."""

  def __init__(self, checkpoints: Checkpoints):
    super().__init__()
    self.checkpoints = checkpoints

  def on_train_batch_end(self, batch, logs=None):
    loss = (logs or {}).get("loss")
    if loss is not None and not math.isfinite(float(loss)):
      step = int(self.model.optimizer.iterations.numpy())
      raise NonFiniteLossError(
          f"loss became {float(loss)} at step {step}; training stopped. The "
          f"last good checkpoint is kept: {self.checkpoints.manager.latest_checkpoint}")
    self.checkpoints.save()

  def on_train_end(self, logs=None):
    self.checkpoints.save(force=True)
