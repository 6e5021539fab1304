"""The cached linear probe against A.3's head and a NumPy optimum; the A.3
probe's test-time statistics."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from cpc_tf.data import augment
from cpc_tf.configs import modes
from cpc_tf.evaluation import classification
from cpc_tf.data import pipelines
from cpc_tf.serving import encoder_dir
from cpc_tf.models import heads
from cpc_tf.evaluation import feature_cache
from cpc_tf.evaluation import logistic


def cells_dataset(latents, labels, batch):
  """(cells [b, G, G, D], label) batches of a latent grid [N, G, G, D]."""
  return tf.data.Dataset.from_tensor_slices((latents, labels)).batch(batch)


def test_cached_features_hold_means_and_cell_moments():
  rng = np.random.default_rng(0)
  latents = rng.normal(2.0, 3.0, size=(10, 3, 3, 5)).astype(np.float32)
  cached = feature_cache.cache_features(tf.identity,
                                cells_dataset(latents, np.arange(10), 4))
  np.testing.assert_allclose(cached.features, latents.mean(axis=(1, 2)),
                             rtol=1e-5)
  np.testing.assert_array_equal(cached.labels, np.arange(10))
  cells = latents.reshape(-1, 5).astype(np.float64)
  np.testing.assert_allclose(cached.cell_mean, cells.mean(axis=0), rtol=1e-6)
  np.testing.assert_allclose(cached.cell_variance, cells.var(axis=0), rtol=1e-6)


def test_cached_probe_gives_the_a3_head_logits():
  """A.3's head with its norm fixed to the cells' statistics equals the
  cached probe on the standardised mean latent, the norm's offset folded
  into the bias."""
  rng = np.random.default_rng(1)
  classes, dim = 4, 6
  latents = rng.normal(1.0, 2.0, size=(8, 3, 3, dim)).astype(np.float32)
  cached = feature_cache.cache_features(tf.identity,
                                cells_dataset(latents, np.zeros(8), 3))
  head = heads.linear_head(classes)
  head(latents)
  heads.fix_norm_statistics(head, cached.cell_mean, cached.cell_variance)
  offset = rng.normal(size=dim).astype(np.float32)
  head.get_layer("norm").beta.assign(offset)
  weights = rng.normal(size=(dim, classes)).astype(np.float32)
  bias = rng.normal(size=classes).astype(np.float32)
  head.get_layer("logits").set_weights([weights[None, None], bias])

  expected = head(latents, training=False).numpy()
  cached_logits = (feature_cache.standardise(cached.features, cached) @ weights
                   + offset @ weights + bias)
  np.testing.assert_allclose(cached_logits, expected, rtol=1e-4, atol=1e-4)


def numpy_logistic_optimum(x, y, classes, penalty, iterations=50):
  """Newton's method on mean cross-entropy + penalty ||W||^2 (bias free),
  written from the formulas: returns (W, b)."""
  n, d = x.shape
  xb = np.hstack([x, np.ones((n, 1))])                    # [N, D+1]
  theta = np.zeros((d + 1, classes))
  onehot = np.eye(classes)[y]
  reg = np.diag(np.r_[np.full(d, 2 * penalty), 0.0])
  for _ in range(iterations):
    logits = xb @ theta
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    grad = xb.T @ (p - onehot) / n + reg @ theta          # [D+1, C]
    hessian = np.zeros(((d + 1) * classes,) * 2)
    for i in range(n):
      curvature = np.diag(p[i]) - np.outer(p[i], p[i])
      hessian += np.kron(np.outer(xb[i], xb[i]), curvature) / n
    hessian += np.kron(reg, np.eye(classes))
    # The softmax is unchanged by a shift of all biases: least squares.
    step = np.linalg.lstsq(hessian, grad.ravel(), rcond=None)[0]
    theta -= step.reshape(d + 1, classes)
  return theta[:d], theta[d]


def test_fit_logistic_reaches_the_numpy_optimum():
  rng = np.random.default_rng(2)
  x = rng.normal(size=(60, 3)).astype(np.float32)
  y = (x[:, 0] + 0.5 * rng.normal(size=60) > 0).astype(np.int64) + (
      x[:, 1] > 0.8)
  penalties = [0.1, 0.01]
  weights, bias, gradient_norms = logistic.fit_logistic(
      x, y, 3, penalties, steps=2000, learning_rate=0.05)
  for i, penalty in enumerate(penalties):
    w, b = numpy_logistic_optimum(x.astype(np.float64), y, 3, penalty)
    np.testing.assert_allclose(weights[i], w, atol=2e-3)
    # Biases are defined up to a shared shift.
    np.testing.assert_allclose(bias[i] - bias[i].mean(), b - b.mean(),
                               atol=2e-3)
    assert gradient_norms[i] < 1e-3


def test_fit_probe_reports_the_penalty_best_on_validation():
  rng = np.random.default_rng(3)
  centres = rng.normal(size=(3, 20))

  def features(n, seed):
    labels = np.random.default_rng(seed).integers(0, 3, n)
    means = centres[labels] + 2.0 * np.random.default_rng(seed + 1).normal(
        size=(n, 20))
    # Cells with mean 0 and variance 1: standardising leaves the means.
    return feature_cache.CachedFeatures(means.astype(np.float32), labels,
                                np.zeros((n, 20)), np.ones((n, 20)), 1)

  result = logistic.fit_probe(features(40, 0), features(200, 5),
                              features(200, 9), 3,
                              penalties=[1.0, 1e-2, 0.0], steps=200)
  scores = result["validation_top1_by_penalty"]
  assert scores[str(result["penalty"])] == max(scores.values())
  assert result["validation_top1"] == max(scores.values())
  # The reported probe is the chosen penalty's: its train accuracy is that
  # fit's, and unpenalised the 40 images in 20 dimensions are all fitted.
  train = features(40, 0)
  x = feature_cache.standardise(train.features, train)
  weights, bias, _ = logistic.fit_logistic(
      x, train.labels, 3, [result["penalty"], 0.0], steps=200)
  assert result["train_top1"] == logistic.accuracy(
      x, train.labels, weights[0], bias[0])
  assert logistic.accuracy(x, train.labels, weights[1], bias[1]) == 1.0
  # Three classes, their centres apart by about twice the noise: far above
  # chance (1/3) on 200 test images.
  assert result["test_top1"] >= 0.75


def test_pixel_cells_are_the_flattened_patches():
  images = np.arange(2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 1, 1, 4, 4, 3)
  cells = feature_cache.pixel_cells(tf.constant(images)).numpy()
  assert cells.shape == (2, 1, 1, 48)
  np.testing.assert_array_equal(cells[1, 0, 0], images[1].ravel())
  patches = np.arange(2 * 3 * 3 * 2 * 2 * 3, dtype=np.float32).reshape(
      2, 3, 3, 2, 2, 3)
  cells = feature_cache.pixel_cells(tf.constant(patches)).numpy()
  assert cells.shape == (2, 3, 3, 12)
  np.testing.assert_array_equal(cells[1, 2, 0], patches[1, 2, 0].ravel())


def test_quadrants_of_even_and_odd_grids():
  """Even sides split in halves; on an odd side the middle row and column
  belong to both halves, so the centre cell is in every quarter; a 1x1
  grid's quarters are its one cell."""
  assert feature_cache.quadrant_bounds(4) == [(0, 2, 0, 2), (0, 2, 2, 4),
                                      (2, 4, 0, 2), (2, 4, 2, 4)]
  assert feature_cache.quadrant_bounds(5) == [(0, 3, 0, 3), (0, 3, 2, 5),
                                      (2, 5, 0, 3), (2, 5, 2, 5)]
  assert feature_cache.quadrant_bounds(1) == [(0, 1, 0, 1)] * 4
  cells = np.arange(25, dtype=np.float32).reshape(1, 5, 5, 1)
  # Top-left quarter: rows 0-2, columns 0-2 of 0..24 laid out row by row.
  top_left = np.mean([0, 1, 2, 5, 6, 7, 10, 11, 12])
  bottom_right = np.mean([12, 13, 14, 17, 18, 19, 22, 23, 24])
  np.testing.assert_allclose(feature_cache.read_out(cells, "quadrants")[0],
                             [top_left, top_left + 2, top_left + 10,
                              bottom_right])


def numpy_readout(cells, readout):
  """The readouts written out cell by cell: [N, G, G, D] -> [N, F]."""
  n, side, _, dim = cells.shape
  if readout == "mean":
    return np.stack([sum(cells[i, r, c] for r in range(side)
                         for c in range(side)) / side ** 2 for i in range(n)])
  if readout == "grid":
    return np.stack([np.concatenate([cells[i, r, c] for r in range(side)
                                     for c in range(side)]) for i in range(n)])
  # Quarters: the rows (columns) of the top (left) half are those before
  # side / 2, the middle one of an odd side included in both halves.
  top = [r for r in range(side) if r <= (side - 1) / 2]
  bottom = [r for r in range(side) if r >= (side - 1) / 2]
  features = []
  for i in range(n):
    quarters = [np.mean([cells[i, r, c] for r in rows for c in cols], axis=0)
                for rows in (top, bottom) for cols in (top, bottom)]
    features.append(np.concatenate(quarters))
  return np.stack(features)


@pytest.mark.parametrize("readout", modes.READOUTS)
@pytest.mark.parametrize("side", [4, 3])
def test_each_readout_gives_the_numpy_logits(readout, side):
  """Pooling, A.3's standardisation with the training cells' statistics
  and a linear map with fixed weights equal NumPy's cell by cell; so do
  the top-1 accuracy and the cross-entropy."""
  rng = np.random.default_rng(side)
  dim, classes = 3, 4
  train_cells = rng.normal(1.0, 2.0, size=(7, side, side, dim)).astype(
      np.float32)
  test_cells = rng.normal(0.5, 1.5, size=(5, side, side, dim)).astype(
      np.float32)
  labels = rng.integers(0, classes, 5)
  train = feature_cache.cache_features(
      tf.identity, cells_dataset(train_cells, np.zeros(7), 3), readout)
  test = feature_cache.cache_features(
      tf.identity, cells_dataset(test_cells, labels, 2), readout)
  features = numpy_readout(test_cells.astype(np.float64), readout)
  weights = rng.normal(size=(features.shape[1], classes))
  bias = rng.normal(size=classes)

  flat = train_cells.reshape(-1, dim).astype(np.float64)
  mean, variance = flat.mean(axis=0), flat.var(axis=0)
  copies = features.shape[1] // dim
  standardised = ((features - np.tile(mean, copies))
                  / np.sqrt(np.tile(variance, copies) + 1e-3))
  expected = standardised @ weights + bias
  logits = feature_cache.standardise(test.features, train) @ weights + bias
  np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
  assert logistic.accuracy(feature_cache.standardise(test.features, train),
                           labels, weights, bias) == np.mean(
                               expected.argmax(axis=1) == labels)
  shifted = expected - expected.max(axis=1, keepdims=True)
  numpy_loss = np.mean(np.log(np.exp(shifted).sum(axis=1))
                       - shifted[np.arange(5), labels])
  loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels, logits)).numpy()
  assert loss == pytest.approx(numpy_loss, rel=1e-4)


def test_feature_cache_encodes_each_image_once():
  """Subsets of a split are served from one encoding of each image; a new
  key (another encoder or readout) starts afresh."""
  rng = np.random.default_rng(4)
  cells = rng.normal(size=(10, 2, 2, 3)).astype(np.float32)
  encoded = []

  def encode(positions):
    encoded.append(list(positions))
    return feature_cache.cache_features(tf.identity, cells_dataset(
        cells[positions], positions, 4), "grid")

  cache = feature_cache.FeatureCache()
  first = cache.get("a", "train", 10, np.array([1, 4]), encode)
  both = cache.get("a", "train", 10, np.array([0, 1, 4, 9]), encode)
  assert encoded == [[1, 4], [0, 9]]
  np.testing.assert_array_equal(both.labels, [0, 1, 4, 9])
  np.testing.assert_allclose(both.features,
                             cells[[0, 1, 4, 9]].reshape(4, -1))
  np.testing.assert_allclose(first.cell_mean, cells[[1, 4]].reshape(
      -1, 3).mean(axis=0), rtol=1e-5)
  cache.get("a", "train", 10, None, encode)
  assert encoded[-1] == [2, 3, 5, 6, 7, 8]
  cache.get("b", "train", 10, np.array([1]), encode)
  assert encoded[-1] == [1]


def test_a3_probe_tests_with_clean_latent_statistics(pretrained, tfds_dir):
  """Trained on colour-dropped patches, the A.3 head still normalises test
  inputs with the statistics of clean latents."""
  config, _ = pretrained
  model = classification.PatchClassifier(encoder_dir.restore(config),
                                   heads.linear_head(10))
  classification.compile_classifier(model, 5e-4)

  def images(train, augmentation=augment.PatchAugment()):
    return pipelines.classification_dataset(
        "cifar10", "train[:64]", tfds_dir, config.grid, 16, train=train,
        augment=augmentation).take(4)

  classification.use_clean_statistics(model, images(train=False))
  dropped = images(train=True, augmentation=dataclasses.replace(
      config.augment, color_drop=1.0))
  model.fit(dropped, epochs=1, steps_per_epoch=3, verbose=0, shuffle=False)

  def cell_moments(dataset):
    cells = np.concatenate([feature_cache.latent_cells(model.encoder)(p).numpy()
                            for p, _ in dataset]).reshape(-1, 64)
    return cells.mean(axis=0), cells.var(axis=0)

  clean_mean, clean_variance = cell_moments(images(train=False))
  dropped_mean, _ = cell_moments(dropped)
  norm = model.head.get_layer("norm")
  np.testing.assert_allclose(norm.moving_mean.numpy(), clean_mean,
                             rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(norm.moving_variance.numpy(), clean_variance,
                             rtol=1e-4, atol=1e-5)
  assert not np.allclose(dropped_mean, clean_mean, rtol=1e-2, atol=1e-3)
