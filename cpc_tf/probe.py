"""The cached linear probe: A.3's head fitted to convergence on features
encoded once.

A.3's head (batch norm without scale, a 1x1 convolution to one logit per
class at every cell, the spatial mean of the logits) is, with the norm's
statistics fixed, a linear map of the image's mean latent standardised by
the per-channel mean and variance over all cells:

  mean_cells(W (z_cell - mu) / sigma + W beta + b) = W (mean_z - mu) / sigma + b'

So each image is encoded once (its evaluation view), only its readout and
its cells' moments are kept, and a multinomial logistic regression is
fitted on the standardised readout for a range of L2 penalties, the penalty
chosen on the validation part. The readout is A.3's mean, or, as peers
evaluate CPC on small images, the means of the grid's four quarters or
every cell (the same head with its own weights per quarter or per cell).
Raw pixels go through the same code, their cells the patches' pixels.
"""

import dataclasses
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from cpc_tf.model import encode_patches

# Keras BatchNormalization's default epsilon, which heads.linear_head uses.
NORM_EPSILON = 1e-3
PENALTIES = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 0.0)
# How an image's grid of cells becomes its features: the mean over all cells
# (A.3), the means of the four quarters side by side, or every cell.
READOUTS = ("mean", "quadrants", "grid")


def quadrant_bounds(side: int) -> List[Tuple[int, int, int, int]]:
  """(first row, row after, first column, column after) of the quarters of
  a side x side grid: top-left, top-right, bottom-left, bottom-right.

  Each quarter spans ceil(side / 2) rows and columns, so on an odd side the
  middle row and column belong to both halves (5x5: rows 0-2 and 2-4) and
  the centre cell to all four quarters; every quarter averages as many
  cells. A 1x1 grid's four quarters are its one cell.
  """
  half = (side + 1) // 2
  spans = [(0, half), (side - half, side)]
  return [(*rows, *cols) for rows in spans for cols in spans]


def read_out(cells: np.ndarray, readout: str) -> np.ndarray:
  """cells [N, G, G, D] -> features [N, F], F = D (mean), 4 D (quadrants)
  or G*G*D (grid, row-major), in blocks of D channels."""
  if readout == "mean":
    return cells.mean(axis=(1, 2))
  if readout == "quadrants":
    return np.concatenate([cells[:, r0:r1, c0:c1].mean(axis=(1, 2))
                           for r0, r1, c0, c1 in quadrant_bounds(
                               cells.shape[1])], axis=1)
  if readout == "grid":
    return cells.reshape(len(cells), -1)
  raise ValueError(f"unknown readout {readout!r}; choose from {READOUTS}")


@dataclasses.dataclass
class CachedFeatures:
  """Per image: its readout, its label and the sum and sum of squares of
  its cells (per channel), from which the statistics of any set of images'
  cells follow."""
  features: np.ndarray       # [N, F], F a multiple of D
  labels: np.ndarray         # [N]
  cell_sums: np.ndarray      # [N, D]
  cell_squares: np.ndarray   # [N, D]
  cells_per_image: int

  def subset(self, rows: np.ndarray) -> "CachedFeatures":
    return CachedFeatures(self.features[rows], self.labels[rows],
                          self.cell_sums[rows], self.cell_squares[rows],
                          self.cells_per_image)

  @property
  def cells(self) -> int:
    return len(self.labels) * self.cells_per_image

  @property
  def cell_mean(self) -> np.ndarray:
    """[D] float64: the mean over all cells of these images."""
    return self.cell_sums.sum(axis=0, dtype=np.float64) / self.cells

  @property
  def cell_variance(self) -> np.ndarray:
    squares = self.cell_squares.sum(axis=0, dtype=np.float64) / self.cells
    return np.maximum(squares - self.cell_mean ** 2, 0.0)


def latent_cells(encoder: keras.Model) -> Callable[[tf.Tensor], tf.Tensor]:
  """patches [B, G, G, p, p, 3] -> the encoder's latents [B, G, G, D]."""
  @tf.function
  def cells(patches):
    return encode_patches(encoder, patches, training=False)
  return cells


def pixel_cells(patches: tf.Tensor) -> tf.Tensor:
  """patches [B, G, G, p, p, 3] -> their pixels as cells [B, G, G, p*p*3]
  (a one-patch grid: the whole image as one cell)."""
  return tf.reshape(patches, tf.concat([tf.shape(patches)[:3], [-1]], 0))


def cache_features(cells_fn: Callable[[tf.Tensor], tf.Tensor],
                   dataset: tf.data.Dataset, readout: str = "mean",
                   progress: Callable[[int], None] = lambda n: None
                   ) -> CachedFeatures:
  """Runs cells_fn ([B, ...] -> [B, G, G, D]) over (patches, label)
  batches once, keeping each image's readout and its cells' moments."""
  features, labels, sums, squares = [], [], [], []
  cells_per_image = images = 0
  for patches, batch_labels in dataset:
    cells = cells_fn(patches).numpy()                          # [B, G, G, D]
    features.append(read_out(cells, readout).astype(np.float32))
    labels.append(batch_labels.numpy())
    sums.append(cells.sum(axis=(1, 2), dtype=np.float64).astype(np.float32))
    squares.append((cells.astype(np.float64) ** 2).sum(axis=(1, 2)).astype(
        np.float32))
    cells_per_image = cells.shape[1] * cells.shape[2]
    images += len(cells)
    progress(images)
  return CachedFeatures(np.concatenate(features),
                        np.concatenate(labels).astype(np.int64),
                        np.concatenate(sums), np.concatenate(squares),
                        cells_per_image)


class FeatureCache:
  """The cached features of whole splits, each image encoded once and
  shared by every probe of the same features (the label fractions and
  seeds of a curve or a ladder rung). Holds one key's splits at a time: a
  new key (another encoder, grid or readout) drops them."""

  def __init__(self):
    self.key = None
    self.splits: Dict[str, Tuple[CachedFeatures, np.ndarray]] = {}

  def get(self, key, split: str, size: int, indices: Optional[np.ndarray],
          encode: Callable[[np.ndarray], CachedFeatures]) -> CachedFeatures:
    """The features of `indices` (sorted positions in the split of `size`
    images; None: all), calling encode(positions) for those not cached."""
    if key != self.key:
      self.key, self.splits = key, {}
    indices = np.arange(size) if indices is None else np.asarray(indices)
    stored, encoded = self.splits.get(split, (None, np.zeros(size, bool)))
    missing = indices[~encoded[indices]]
    if len(missing):
      new = encode(missing)
      if stored is None:
        stored = CachedFeatures(
            *(np.zeros((size,) + a.shape[1:], a.dtype) for a in (
                new.features, new.labels, new.cell_sums, new.cell_squares)),
            new.cells_per_image)
      for name in ("features", "labels", "cell_sums", "cell_squares"):
        getattr(stored, name)[missing] = getattr(new, name)
      encoded[missing] = True
      self.splits[split] = (stored, encoded)
    return stored.subset(indices)


def standardise(features: np.ndarray, statistics: CachedFeatures) -> np.ndarray:
  """What A.3's norm (no scale, its offset folded into the bias) makes of
  the readout: every block of D channels standardised by the training
  cells' per-channel statistics (pooling and a per-channel affine map
  commute, so this equals pooling the normalised cells)."""
  copies = features.shape[1] // len(statistics.cell_mean)
  mean = np.tile(statistics.cell_mean, copies)
  scale = np.sqrt(np.tile(statistics.cell_variance, copies) + NORM_EPSILON)
  return ((features - mean) / scale).astype(np.float32)


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
  x_train = standardise(train.features, train)
  x_validation = standardise(validation.features, train)
  x_test = standardise(test.features, train)
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
