"""The cached linear probe: A.3's head fitted to convergence on features
encoded once.

A.3's head (batch norm without scale, a 1x1 convolution to one logit per
class at every cell, the spatial mean of the logits) is, with the norm's
statistics fixed, a linear map of the image's mean latent standardised by
the per-channel mean and variance over all cells:

  mean_cells(W (z_cell - mu) / sigma + W beta + b) = W (mean_z - mu) / sigma + b'

So each image is encoded once (its evaluation view), only its mean latent
and the cells' moments are kept, and a multinomial logistic regression is
fitted on them for a range of L2 penalties, the penalty chosen on the
validation part. Raw pixels go through the same code as a one-cell grid.
"""

import dataclasses
from typing import Callable, Dict, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from cpc_tf.model import encode_patches

# Keras BatchNormalization's default epsilon, which heads.linear_head uses.
NORM_EPSILON = 1e-3
PENALTIES = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 0.0)


@dataclasses.dataclass
class CachedFeatures:
  """Per image: its mean over cells and its label; over all cells: the
  per-channel first and second moments (float64)."""
  means: np.ndarray          # [N, D]
  labels: np.ndarray         # [N]
  cell_sum: np.ndarray       # [D]
  cell_sum_squares: np.ndarray  # [D]
  cells: int

  @property
  def cell_mean(self) -> np.ndarray:
    return self.cell_sum / self.cells

  @property
  def cell_variance(self) -> np.ndarray:
    return np.maximum(self.cell_sum_squares / self.cells - self.cell_mean ** 2,
                      0.0)


def latent_cells(encoder: keras.Model) -> Callable[[tf.Tensor], tf.Tensor]:
  """patches [B, G, G, p, p, 3] -> the encoder's latents as [B, G*G, D]."""
  @tf.function
  def cells(patches):
    latents = encode_patches(encoder, patches, training=False)  # [B, G, G, D]
    return tf.reshape(latents, [tf.shape(latents)[0], -1, latents.shape[-1]])
  return cells


def pixel_cells(patches: tf.Tensor) -> tf.Tensor:
  """A one-patch grid [B, 1, 1, s, s, 3] -> its pixels as one cell [B, 1, s*s*3]."""
  return tf.reshape(patches, [tf.shape(patches)[0], 1, -1])


def cache_features(cells_fn: Callable[[tf.Tensor], tf.Tensor],
                   dataset: tf.data.Dataset,
                   progress: Callable[[int], None] = lambda n: None
                   ) -> CachedFeatures:
  """Runs cells_fn ([B, ...] -> [B, cells, D]) over (patches, label)
  batches once, keeping each image's mean cell and the cells' moments."""
  means, labels = [], []
  cell_sum = cell_sum_squares = 0.0
  cells = images = 0
  for patches, batch_labels in dataset:
    values = cells_fn(patches).numpy().astype(np.float64)   # [B, cells, D]
    means.append(values.mean(axis=1))
    labels.append(batch_labels.numpy())
    cell_sum = cell_sum + values.sum(axis=(0, 1))
    cell_sum_squares = cell_sum_squares + (values ** 2).sum(axis=(0, 1))
    cells += values.shape[0] * values.shape[1]
    images += values.shape[0]
    progress(images)
  return CachedFeatures(np.concatenate(means).astype(np.float32),
                        np.concatenate(labels).astype(np.int64),
                        np.asarray(cell_sum), np.asarray(cell_sum_squares),
                        cells)


def standardise(means: np.ndarray, statistics: CachedFeatures) -> np.ndarray:
  """What A.3's norm (no scale, its offset folded into the bias) makes of
  the mean latent, with the training cells' statistics."""
  return ((means - statistics.cell_mean)
          / np.sqrt(statistics.cell_variance + NORM_EPSILON)).astype(np.float32)


def fit_logistic(features: np.ndarray, labels: np.ndarray, num_classes: int,
                 penalties: Sequence[float], steps: int = 500,
                 learning_rate: float = 0.05
                 ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Multinomial logistic regressions, one per penalty, each minimising
  mean cross-entropy + penalty * ||W||^2 (the bias is not penalised) with
  full-batch Adam, its rate decayed by a cosine.

  The problems are independent (Adam is per coordinate) and solved together:
  one [N, D] x [D, P*C] product costs little more than [N, D] x [D, C].
  Returns (W [P, D, C], b [P, C], each problem's final gradient norm [P], a
  convergence check).
  """
  x = tf.constant(features)                                     # [N, D]
  count, dim = len(penalties), features.shape[1]
  y = tf.repeat(tf.constant(labels)[:, None], count, axis=1)    # [N, P]
  weights = tf.Variable(tf.zeros([dim, count, num_classes]))
  bias = tf.Variable(tf.zeros([count, num_classes]))
  optimizer = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(
      learning_rate, steps, alpha=0.01))
  penalty = tf.constant(penalties, tf.float32)                  # [P]

  def objectives():
    """[P]: each problem's objective."""
    logits = tf.reshape(tf.matmul(x, tf.reshape(weights, [dim, -1])),
                        [-1, count, num_classes]) + bias       # [N, P, C]
    cross_entropy = tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits), axis=0)
    return cross_entropy + penalty * tf.reduce_sum(weights ** 2, axis=[0, 2])

  @tf.function
  def train(steps):
    for _ in tf.range(steps):
      with tf.GradientTape() as tape:
        loss = tf.reduce_sum(objectives())
      optimizer.apply_gradients(zip(tape.gradient(loss, [weights, bias]),
                                    [weights, bias]))
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(objectives())
    grad_weights, grad_bias = tape.gradient(loss, [weights, bias])
    return tf.sqrt(tf.reduce_sum(grad_weights ** 2, axis=[0, 2])
                   + tf.reduce_sum(grad_bias ** 2, axis=1))

  gradient_norms = train(tf.constant(steps)).numpy()
  return (np.transpose(weights.numpy(), [1, 0, 2]), bias.numpy(),
          gradient_norms)


def accuracy(features: np.ndarray, labels: np.ndarray, weights: np.ndarray,
             bias: np.ndarray, k: int = 1) -> float:
  logits = features @ weights + bias
  top = np.argsort(-logits, axis=1)[:, :k]
  return float(np.mean(np.any(top == labels[:, None], axis=1)))


def fit_probe(train: CachedFeatures, validation: CachedFeatures,
              test: CachedFeatures, num_classes: int,
              penalties: Sequence[float] = PENALTIES, steps: int = 500
              ) -> Dict[str, object]:
  """Fits one probe per penalty on `train`, keeps the one with the best
  validation top-1 (the stronger penalty on a tie) and returns its
  accuracies, weights and convergence check."""
  x_train = standardise(train.means, train)
  x_validation = standardise(validation.means, train)
  x_test = standardise(test.means, train)
  weights, bias, gradient_norms = fit_logistic(
      x_train, train.labels, num_classes, penalties, steps)
  scores = [accuracy(x_validation, validation.labels, w, b)
            for w, b in zip(weights, bias)]
  best = max(range(len(penalties)), key=lambda i: (scores[i], penalties[i]))
  w, b = weights[best], bias[best]
  return {
      "penalty": penalties[best],
      "validation_top1_by_penalty": {str(p): s
                                     for p, s in zip(penalties, scores)},
      "gradient_norm": float(gradient_norms[best]),
      "train_top1": accuracy(x_train, train.labels, w, b),
      "validation_top1": scores[best],
      "test_top1": accuracy(x_test, test.labels, w, b),
      "test_top5": accuracy(x_test, test.labels, w, b, k=5),
      "weights": w, "bias": b,
  }
