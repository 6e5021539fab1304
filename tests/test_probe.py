"""The cached linear probe against A.3's head and a NumPy optimum; the A.3
probe's test-time statistics."""

import dataclasses

import numpy as np
import tensorflow as tf

from cpc_tf import augment
from cpc_tf import classify
from cpc_tf import data
from cpc_tf import encoder_dir
from cpc_tf import heads
from cpc_tf import probe


def cells_dataset(latents, labels, batch):
  """(cells [b, G*G, D], label) batches of a latent grid [N, G, G, D]."""
  cells = latents.reshape(len(latents), -1, latents.shape[-1])
  return tf.data.Dataset.from_tensor_slices((cells, labels)).batch(batch)


def test_cached_features_hold_means_and_cell_moments():
  rng = np.random.default_rng(0)
  latents = rng.normal(2.0, 3.0, size=(10, 3, 3, 5)).astype(np.float32)
  cached = probe.cache_features(tf.identity,
                                cells_dataset(latents, np.arange(10), 4))
  np.testing.assert_allclose(cached.means, latents.mean(axis=(1, 2)), rtol=1e-5)
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
  cached = probe.cache_features(tf.identity,
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
  cached_logits = (probe.standardise(cached.means, cached) @ weights
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
  weights, bias, gradient_norms = probe.fit_logistic(
      x, y, 3, penalties, steps=2000, learning_rate=0.05)
  for i, penalty in enumerate(penalties):
    w, b = numpy_logistic_optimum(x.astype(np.float64), y, 3, penalty)
    np.testing.assert_allclose(weights[i], w, atol=2e-3)
    # Biases are defined up to a shared shift.
    np.testing.assert_allclose(bias[i] - bias[i].mean(), b - b.mean(), atol=2e-3)
    assert gradient_norms[i] < 1e-3


def test_fit_probe_reports_the_penalty_best_on_validation():
  rng = np.random.default_rng(3)
  centres = rng.normal(size=(3, 20))

  def features(n, seed):
    labels = np.random.default_rng(seed).integers(0, 3, n)
    means = centres[labels] + 2.0 * np.random.default_rng(seed + 1).normal(
        size=(n, 20))
    return probe.CachedFeatures(means.astype(np.float32), labels,
                                np.zeros(20), np.full(20, float(n)), n)

  result = probe.fit_probe(features(40, 0), features(200, 5), features(200, 9),
                           3, penalties=[1.0, 1e-2, 0.0], steps=200)
  scores = result["validation_top1_by_penalty"]
  assert scores[str(result["penalty"])] == max(scores.values())
  assert result["validation_top1"] == max(scores.values())
  # 40 images in 20 dimensions: unpenalised, the probe fits them all.
  assert result["train_top1"] >= 0.95 or result["penalty"] > 0
  assert 0 <= result["test_top1"] <= result["test_top5"] <= 1


def test_pixel_cells_are_the_flattened_image():
  images = np.arange(2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 1, 1, 4, 4, 3)
  cells = probe.pixel_cells(tf.constant(images)).numpy()
  assert cells.shape == (2, 1, 48)
  np.testing.assert_array_equal(cells[1, 0], images[1].ravel())


def test_a3_probe_tests_with_clean_latent_statistics(pretrained, tfds_dir):
  """Trained on colour-dropped patches, the A.3 head still normalises test
  inputs with the statistics of clean latents."""
  config, _ = pretrained
  model = classify.PatchClassifier(encoder_dir.restore(config),
                                   heads.linear_head(10))
  classify.compile_classifier(model, 5e-4)

  def images(train, augmentation=augment.PatchAugment()):
    return data.classification_dataset(
        "cifar10", "train[:64]", tfds_dir, config.grid, 16, train=train,
        augment=augmentation).take(4)

  classify.use_clean_statistics(model, images(train=False))
  dropped = images(train=True, augmentation=dataclasses.replace(
      config.augment, color_drop=1.0))
  model.fit(dropped, epochs=1, steps_per_epoch=3, verbose=0, shuffle=False)

  def cell_moments(dataset):
    cells = np.concatenate([probe.latent_cells(model.encoder)(p).numpy()
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
