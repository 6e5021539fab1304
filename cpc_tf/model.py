"""CPC pretraining model: patches -> encoder -> latents -> CPC objective."""

import keras
import tensorflow as tf

from cpc_tf.infonce import CPCObjective


def encode_patches(encoder: keras.Model, patches: tf.Tensor,
                   training: bool = False, recompute_chunks: int = 0
                   ) -> tf.Tensor:
  """[B, H, W, p, p, C] patches -> [B, H, W, D] latents, each patch on its own.

  recompute_chunks > 0 encodes the patches in that many chunks under
  tf.recompute_grad: the backward pass recomputes each chunk's activations
  instead of keeping them all.
  """
  _, rows, cols, size, _, channels = patches.shape
  flat = tf.reshape(patches, [-1, size, size, channels])      # [B*H*W, p, p, C]
  count = flat.shape[0]
  if recompute_chunks and count:
    encode = tf.recompute_grad(lambda chunk: encoder(chunk, training=training))
    sizes = [count // recompute_chunks + (i < count % recompute_chunks)
             for i in range(recompute_chunks)]
    latents = tf.concat([encode(chunk) for chunk in tf.split(flat, sizes)
                         if chunk.shape[0]], axis=0)          # [B*H*W, D]
  else:
    latents = encoder(flat, training=training)                # [B*H*W, D]
  return tf.reshape(latents, [-1, rows, cols, latents.shape[-1]])


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
