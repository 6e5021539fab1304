"""What the cached probe fits on: each image encoded once (its evaluation
view), its grid of latents read out, and its cells' moments kept.

A.3's head (batch norm without scale, a 1x1 convolution to one logit per
class at every cell, the spatial mean of the logits) is, with the norm's
statistics fixed, a linear map of the image's mean latent standardised by
the per-channel mean and variance over all cells:

  mean_cells(W (z_cell - mu) / sigma + W beta + b)
      = W (mean_z - mu) / sigma + b'

So only the readout and the cells' moments are kept. The readout is A.3's
mean, or, as peers evaluate CPC on small images, the means of the grid's
four quarters or every cell (the same head with its own weights per quarter
or per cell). Raw pixels go through the same code, their cells the
patches' pixels.
"""

import dataclasses
from typing import Callable, Dict, List, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

from cpc_tf.models.encoder import encode_patches

# Keras BatchNormalization's default epsilon, which heads.linear_head uses.
NORM_EPSILON = 1e-3


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
  raise ValueError(f"unknown readout {readout!r}")


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
