"""TensorBoard scalars keyed by the optimizer step, so resumed runs continue
their curves (Keras' TensorBoard callback counts batches from 0 in each fit)."""

import os

import keras
import tensorflow as tf


class ScalarSummaries(keras.callbacks.Callback):
  """Writes the metrics of each Keras epoch (here: --log_every steps) and the
  learning rate to model_dir/<subdir> (nothing if not `write`: non-chief
  workers)."""

  def __init__(self, model_dir: str, subdir: str = "train", write: bool = True):
    super().__init__()
    self.writer = (
        tf.summary.create_file_writer(os.path.join(model_dir, subdir))
        if write else tf.summary.create_noop_writer())

  def on_epoch_end(self, epoch, logs=None):
    optimizer = self.model.optimizer
    step = int(optimizer.iterations.numpy())
    with self.writer.as_default(step=step):
      for name, value in (logs or {}).items():
        tf.summary.scalar(name, value)
      tf.summary.scalar("learning_rate", optimizer.learning_rate)
    self.writer.flush()

  def on_train_end(self, logs=None):
    self.writer.close()
