"""CPC pretraining model: patches -> encoder -> latents -> CPC objective."""

import keras
import tensorflow as tf

from cpc_tf.models.encoder import encode_patches
from cpc_tf.models.infonce import CPCObjective


class CPCModel(keras.Model):
  """Encoder f plus the A.2 objective, trained with a custom train_step."""

  def __init__(self, encoder: keras.Model, objective: CPCObjective,
               recompute_chunks: int = 0, **kwargs):
    super().__init__(**kwargs)
    self.encoder = encoder
    self.objective = objective
    self.recompute_chunks = recompute_chunks
    self.loss_tracker = keras.metrics.Mean(name="loss")
    self.accuracy_tracker = keras.metrics.Mean(name="cpc_accuracy")
    self.direction_trackers = {
        name: keras.metrics.Mean(name=f"loss_{name}")
        for name in objective.direction_names}

  @property
  def metrics(self):
    return [self.loss_tracker, self.accuracy_tracker,
            *self.direction_trackers.values()]

  def call(self, patches, training=False):
    latents = encode_patches(self.encoder, patches, training)
    return self.objective(latents)

  def compute_cpc_loss(self, patches, training):
    """Returns (total loss, per-direction losses, contrastive accuracy)."""
    latents = encode_patches(self.encoder, patches, training,   # [B, H, W, D]
                             self.recompute_chunks if training else 0)
    losses, accuracy = self.objective(latents)
    return tf.add_n(list(losses.values())), losses, accuracy

  def _update_metrics(self, loss, losses, accuracy):
    self.loss_tracker.update_state(loss)
    self.accuracy_tracker.update_state(accuracy)
    for name, value in losses.items():
      self.direction_trackers[name].update_state(value)
    results = {m.name: m.result() for m in self.metrics}
    if isinstance(tf.distribute.get_strategy(),
                  tf.distribute.MultiWorkerMirroredStrategy):
      # Keras 3 reduces multi-worker logs with a mean over axis 0, which
      # scalars lack (tensorflow/tensorflow#72388): give them that axis.
      results = {name: value[None] for name, value in results.items()}
    return results

  def train_step(self, patches):
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    with tf.GradientTape() as tape:
      loss, losses, accuracy = self.compute_cpc_loss(patches, training=True)
      # Each replica holds the mean over its share of an equal split of the
      # global batch; the optimizer sums gradients over replicas. For
      # float16, scale_loss also applies the dynamic loss scale (undone in
      # apply_gradients).
      scaled_loss = self.optimizer.scale_loss(loss / replicas)
    variables = self.trainable_variables
    gradients = tape.gradient(scaled_loss, variables)
    self.optimizer.apply_gradients(zip(gradients, variables))
    return self._update_metrics(loss, losses, accuracy)
