"""Classification on CPC latents: patches -> frozen encoder -> latents -> head."""

import time
from typing import Optional

import keras
import tensorflow as tf

from cpc_tf import backbone_step
from cpc_tf import heads
from cpc_tf import probe
from cpc_tf.model import encode_patches

class PatchClassifier(keras.Model):
  """Logits of a head on the encoder's latent grid.

  The encoder is frozen unless fine_tune (then it also runs in training
  mode); with an encoder_learning_rate it gets its own Adam at that rate
  while the compiled optimizer trains the head (Section 2.2: fine-tuning
  uses a smaller learning rate for the encoder).
  """

  def __init__(self, encoder: keras.Model, head: keras.Model,
               fine_tune: bool = False,
               encoder_learning_rate: Optional[float] = None, **kwargs):
    super().__init__(**kwargs)
    self.encoder = encoder
    self.head = head
    self.fine_tune = fine_tune
    self.encoder.trainable = fine_tune
    self.encoder_optimizer = None
    if fine_tune and encoder_learning_rate is not None:
      self.encoder_optimizer = backbone_step.build_optimizer(
          encoder, encoder_learning_rate)

  def call(self, patches, training=False):
    latents = encode_patches(self.encoder, patches,           # [B, G, G, D]
                             training=training and self.fine_tune)
    return self.head(latents, training=training)

  def train_step(self, data):
    if self.encoder_optimizer is None:
      return super().train_step(data)
    return backbone_step.train_step(self, data, self.encoder,
                                    self.encoder_optimizer)


def use_clean_statistics(model: PatchClassifier, clean: tf.data.Dataset):
  """Fixes the linear head's test-time normalisation to the statistics of
  the latents of `clean`, (patches, label) batches of evaluation views.
  Training still normalises with each batch's statistics (A.3)."""
  statistics = probe.cache_features(probe.latent_cells(model.encoder), clean)
  heads.fix_norm_statistics(model.head, statistics.cell_mean,
                            statistics.cell_variance)


def accuracy_metrics():
  return [keras.metrics.SparseCategoricalAccuracy(name="top1"),
          keras.metrics.SparseTopKCategoricalAccuracy(5, name="top5")]


def compile_classifier(model: PatchClassifier, learning_rate: float):
  """Adam on the head (and on the encoder when it has no optimizer of its
  own); cross-entropy; top-1 and top-5."""
  model.compile(
      optimizer=keras.optimizers.Adam(learning_rate),
      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
      metrics=accuracy_metrics())


def train_with_early_stopping(model: keras.Model, train: tf.data.Dataset,
                              held_out: tf.data.Dataset, max_steps: int,
                              eval_every: int, patience: int, callbacks=()
                              ) -> int:
  """Trains for at most max_steps, in rounds of eval_every steps each ended
  by a validation; stops after `patience` validations without a better
  top-1 and keeps the best weights. Returns the steps taken."""
  if not 0 < eval_every <= max_steps:
    raise ValueError(f"eval_every ({eval_every}) must be in [1, max_steps "
                     f"({max_steps})]")
  stopping = keras.callbacks.EarlyStopping(
      monitor="val_top1", mode="max", patience=patience,
      restore_best_weights=True)
  history = model.fit(train, epochs=max_steps // eval_every,
                      steps_per_epoch=eval_every, validation_data=held_out,
                      callbacks=[*callbacks, stopping], shuffle=False, verbose=2)
  return len(history.history["loss"]) * eval_every


def fine_tune(model: PatchClassifier, train: tf.data.Dataset,
              held_out: tf.data.Dataset, learning_rate: float,
              encoder_learning_rate: float, max_steps: int, eval_every: int,
              patience: int, callbacks=()):
  """Section 2.2: from the fixed-encoder solution, train encoder and head
  together (the encoder at its own smaller rate) with early stopping on the
  held-out data. Returns (the fine-tuned model, steps taken)."""
  tuned = PatchClassifier(model.encoder, model.head, fine_tune=True,
                          encoder_learning_rate=encoder_learning_rate)
  compile_classifier(tuned, learning_rate)
  steps = train_with_early_stopping(tuned, train, held_out, max_steps,
                                    eval_every, patience, callbacks)
  return tuned, steps


class WallClock:
  """Seconds since creation."""

  def __init__(self):
    self.start = time.time()

  def seconds(self) -> float:
    return time.time() - self.start
