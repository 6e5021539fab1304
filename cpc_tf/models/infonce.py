"""The CPC objective of Appendix A.2: InfoNCE over spatial predictions.

For every direction (the latent grid rotated so that "below" is the direction
predicted), the context network summarises the rows above, a 1x1 convolution
per offset predicts the target i+1 rows below, and each prediction is scored
against every target of the (global) batch with a softmax cross-entropy.
"""

from typing import Dict, Tuple

import keras
import tensorflow as tf
from keras import layers

from cpc_tf.models.context import ContextNetwork

# Counter-clockwise quarter turns that make each direction's "rows below" the
# rows to predict.
DIRECTIONS = {1: ("top_down",),
              2: ("top_down", "bottom_up"),
              4: ("top_down", "bottom_up", "left_right", "right_left")}
ROTATIONS = {"top_down": 0, "bottom_up": 2, "left_right": 1, "right_left": 3}
# Whose targets are the negatives: the whole global batch's, or only the
# replica's own.
NEGATIVES = ("global", "local")


def rotate(grid: tf.Tensor, quarter_turns: int) -> tf.Tensor:
  """tf.image.rot90 on [B, H, W, C] without its runtime asserts (which XLA
  drops with a warning per call)."""
  swap = [0, 2, 1, 3]
  if quarter_turns == 1:
    return tf.reverse(tf.transpose(grid, swap), [1])
  if quarter_turns == 2:
    return tf.reverse(grid, [1, 2])
  if quarter_turns == 3:
    return tf.transpose(tf.reverse(grid, [1]), swap)
  return grid


def gather_targets(targets: tf.Tensor,
                   negatives: str) -> Tuple[tf.Tensor, tf.Tensor]:
  """All targets to score against and where this replica's targets start.

  With negatives="global" every replica sees the targets of the whole global
  batch (all_gather is differentiable: each replica gets back the gradient
  of every replica's loss with respect to its own targets).
  """
  context = tf.distribute.get_replica_context()
  if (negatives == "local" or context is None
      or context.num_replicas_in_sync == 1):
    return targets, tf.constant(0, tf.int32)
  gathered = context.all_gather(targets, axis=0)
  offset = (tf.cast(context.replica_id_in_sync_group, tf.int32)
            * tf.shape(targets)[0])
  return gathered, offset


def contrastive_loss(preds: tf.Tensor, targets: tf.Tensor,
                     offset: int, negatives: str = "global"
                     ) -> Tuple[tf.Tensor, tf.Tensor]:
  """A.2 lines 10-23 for one offset: per-prediction cross-entropy and hits.

  preds: [B, H - offset, W, T] predictions of the targets `offset` rows below.
  targets: [B, H, W, T].
  Returns ([B * (H - offset) * W] losses, same-shaped 0/1 float "top-1 hit").
  """
  shape = tf.shape(targets)
  batch, rows, cols = shape[0], shape[1], shape[2]
  target_dim = targets.shape[-1]
  # Scores, softmax and loss in float32 whatever the compute precision.
  flat_targets, label_offset = gather_targets(
      tf.cast(tf.reshape(targets, [-1, target_dim]), tf.float32), negatives)
  flat_preds = tf.cast(tf.reshape(preds, [-1, target_dim]), tf.float32)
  logits = tf.matmul(flat_preds, flat_targets, transpose_b=True)

  rows_i = rows - offset
  total = batch * rows_i * cols
  position = tf.range(total)
  b = position // (rows_i * cols)
  col = position % (rows_i * cols)
  labels = label_offset + b * rows * cols + offset * cols + col

  losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
  hits = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32),
                          labels), tf.float32)
  return losses, hits


class CPCObjective(keras.layers.Layer):
  """latents [B, H, W, D] -> {direction: loss}, contrastive accuracy.

  Holds everything A.2 creates: context network(s), the target projection
  and one prediction convolution per offset and direction.
  """

  def __init__(self, directions: int = 1, target_dim: int = 64,
               emb_scale: float = 0.1, steps_to_ignore: int = 2,
               steps_to_predict: int = 3, context_dim: int = 256,
               context_blocks: int = 5, share_context: bool = False,
               negatives: str = "global", **kwargs):
    super().__init__(**kwargs)
    # Settings checked by PretrainConfig.validate().
    self.direction_names = DIRECTIONS[directions]
    self.offsets = [i + 1 for i in range(steps_to_ignore, steps_to_predict)]
    self.emb_scale = emb_scale
    self.negatives = negatives
    self.target_projection = layers.Conv2D(target_dim, 1, name="targets")
    if share_context:
      self.context_networks = [ContextNetwork(
          context_dim, context_blocks, name="context")] * directions
    else:
      self.context_networks = [
          ContextNetwork(context_dim, context_blocks, name=f"context_{d}")
          for d in self.direction_names]
    self.predictors = [
        [layers.Conv2D(target_dim, 1, name=f"predict_{d}_{k}")
         for k in self.offsets] for d in self.direction_names]

  def contexts(self, latents) -> Dict[str, tf.Tensor]:
    """Per direction, the context of the latent grid turned so that the
    direction points down: [B, H', W', D] with (H', W') = (H, W) or (W, H)."""
    return {name: net(rotate(latents, ROTATIONS[name]))
            for name, net in zip(self.direction_names, self.context_networks)}

  def call(self, latents) -> Tuple[Dict[str, tf.Tensor], tf.Tensor]:
    targets = self.target_projection(latents)                  # [B, H, W, T]
    losses, hits = {}, []
    for (name, context), predictors in zip(self.contexts(latents).items(),
                                           self.predictors):
      turned_targets = rotate(targets, ROTATIONS[name])
      loss = 0.0
      for offset, predict in zip(self.offsets, predictors):
        preds = predict(context)[:, :-offset] * self.emb_scale
        offset_losses, offset_hits = contrastive_loss(
            preds, turned_targets, offset, self.negatives)
        loss += tf.reduce_mean(offset_losses)
        hits.append(offset_hits)
      losses[name] = loss
    return losses, tf.reduce_mean(tf.concat(hits, axis=0))
