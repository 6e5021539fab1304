"""The A.2 objective against a NumPy reference written from the formulas."""

import numpy as np
import pytest
import tensorflow as tf

from cpc_tf.configs import pretrain as config_lib
from cpc_tf.models import context
from cpc_tf.models import infonce
from cpc_tf.train import trainer

QUARTER_TURNS = {"top_down": 0, "bottom_up": 2, "left_right": 1,
                 "right_left": 3}


def np_conv(x, kernel, bias, pad_rows=(0, 0), pad_cols=(0, 0)):
  """out[b, i, j] = sum_{u, v} x_padded[b, i + u, j + v] @ kernel[u, v]
  + bias."""
  x = np.pad(x, ((0, 0), pad_rows, pad_cols, (0, 0)))
  kh, kw = kernel.shape[:2]
  rows, cols = x.shape[1] - kh + 1, x.shape[2] - kw + 1
  out = np.zeros(x.shape[:1] + (rows, cols, kernel.shape[-1]))
  for u in range(kh):
    for v in range(kw):
      out += x[:, u:u + rows, v:v + cols] @ kernel[u, v]
  return out + bias


def np_pixel_cnn(latents, blocks):
  """A.2 pixelCNN; blocks: [(w_in, b_in, w_row, b_row, w_above, b_above,
  w_out, b_out)] kernels in [kh, kw, in, out]."""
  relu = lambda x: np.maximum(x, 0.0)
  cres = latents
  for w_in, b_in, w_row, b_row, w_above, b_above, w_out, b_out in blocks:
    c = relu(np_conv(cres, w_in, b_in))
    c = np_conv(c, w_row, b_row, pad_cols=(1, 1))          # 1x3, SAME
    c = relu(np_conv(c, w_above, b_above, pad_rows=(1, 0)))  # pad top, 2x1
    c = np_conv(c, w_out, b_out)
    cres = relu(cres + c)
  return cres


def np_cpc_loss(latents, weights, emb_scale, steps_to_ignore, steps_to_predict):
  """sum over directions and offsets of the mean over predictions of
  -log softmax(z_hat . z_l)[positive], negatives = all targets in the batch."""
  total, hits, count = 0.0, 0, 0
  for direction, (blocks, predictors) in weights["directions"].items():
    grid = np.rot90(latents, QUARTER_TURNS[direction], axes=(1, 2))
    context = np_pixel_cnn(grid, blocks)
    targets = grid @ weights["targets"][0][0, 0] + weights["targets"][1]
    batch, rows, cols, dim = targets.shape
    all_targets = targets.reshape(-1, dim)
    for i, (w, b) in zip(range(steps_to_ignore, steps_to_predict), predictors):
      k = i + 1
      losses = []
      for n in range(batch):
        for r in range(rows - k):
          for c in range(cols):
            pred = (context[n, r, c] @ w[0, 0] + b) * emb_scale
            logits = all_targets @ pred
            positive = (n * rows + r + k) * cols + c
            log_z = np.log(np.sum(np.exp(logits - logits.max()))) + logits.max()
            losses.append(log_z - logits[positive])
            hits += int(np.argmax(logits) == positive)
            count += 1
      total += np.mean(losses)
  return total, hits / count


def objective_weights(objective):
  """The Keras objective's variables, arranged for the NumPy reference."""
  def conv(layer):
    return tuple(v.numpy().astype(np.float64) for v in layer.weights)
  weights = {"targets": conv(objective.target_projection), "directions": {}}
  for name, net, predictors in zip(objective.direction_names,
                                   objective.context_networks,
                                   objective.predictors):
    blocks = [conv(b.conv_in) + conv(b.conv_row) + conv(b.conv_above)
              + conv(b.conv_out) for b in net.layers]
    weights["directions"][name] = (blocks, [conv(p) for p in predictors])
  return weights


@pytest.mark.parametrize("directions,steps_to_ignore,steps_to_predict,share", [
    (1, 2, 3, False), (1, 0, 3, False), (2, 1, 3, False), (4, 0, 2, False),
    (4, 2, 4, True)])
def test_loss_matches_numpy(directions, steps_to_ignore, steps_to_predict,
                            share):
  tf.keras.utils.set_random_seed(1)
  rng = np.random.default_rng(directions * 10 + steps_to_predict)
  latents = rng.normal(size=(3, 5, 5, 6)).astype(np.float32)
  objective = infonce.CPCObjective(
      directions=directions, target_dim=4, emb_scale=0.1,
      steps_to_ignore=steps_to_ignore, steps_to_predict=steps_to_predict,
      context_dim=8, share_context=share)
  losses, accuracy = objective(tf.constant(latents))
  expected, expected_accuracy = np_cpc_loss(
      latents.astype(np.float64), objective_weights(objective), 0.1,
      steps_to_ignore, steps_to_predict)
  assert len(losses) == directions
  np.testing.assert_allclose(float(tf.add_n(list(losses.values()))), expected,
                             rtol=1e-4)
  np.testing.assert_allclose(float(accuracy), expected_accuracy, atol=1e-6)


def test_loss_matches_numpy_on_non_square_grid():
  latents = np.random.default_rng(3).normal(
      size=(2, 6, 4, 5)).astype(np.float32)
  objective = infonce.CPCObjective(directions=4, target_dim=3, context_dim=4,
                                   steps_to_ignore=0, steps_to_predict=2)
  losses, _ = objective(tf.constant(latents))
  expected, _ = np_cpc_loss(latents.astype(np.float64),
                            objective_weights(objective), 0.1, 0, 2)
  np.testing.assert_allclose(float(tf.add_n(list(losses.values()))), expected,
                             rtol=1e-4)


@pytest.mark.parametrize("quarter_turns", [0, 1, 2, 3])
def test_rotate_equals_rot90(quarter_turns):
  grid = tf.random.normal([2, 3, 4, 5])
  np.testing.assert_array_equal(infonce.rotate(grid, quarter_turns),
                                tf.image.rot90(grid, quarter_turns))


def assert_causal(objective, size=6, seed=0):
  """Changing latents strictly 'below' row i (in each direction's frame)
  leaves that direction's context at rows <= i unchanged."""
  rng = np.random.default_rng(seed)
  latents = rng.normal(size=(2, size, size, 8)).astype(np.float32)
  before = objective.contexts(tf.constant(latents))
  for name in objective.direction_names:
    turns = QUARTER_TURNS[name]
    for row in range(size - 1):
      turned = np.rot90(latents, turns, axes=(1, 2)).copy()
      turned[:, row + 1:] += rng.normal(size=turned[:, row + 1:].shape)
      changed = np.rot90(turned, -turns, axes=(1, 2)).astype(np.float32)
      after = objective.contexts(tf.constant(changed))[name].numpy()
      np.testing.assert_allclose(after[:, :row + 1],
                                 before[name].numpy()[:, :row + 1], atol=1e-5)
      # ... and the rows below do change: the check can fail.
      assert not np.allclose(after[:, row + 1:],
                             before[name].numpy()[:, row + 1:])


@pytest.mark.parametrize("directions", [1, 2, 4])
def test_context_is_causal_in_every_direction(directions):
  assert_causal(infonce.CPCObjective(directions=directions, context_dim=16),
                seed=directions)


@pytest.mark.parametrize("blocks", [1, 3])
def test_context_blocks_sets_the_depth_and_stays_causal(blocks):
  config = config_lib.PretrainConfig(directions=2, context_dim=16,
                                     context_blocks=blocks)
  objective = trainer.objective(config)
  for network in objective.context_networks:
    assert [type(layer) for layer in network.layers] == (
        [context.MaskedResidualBlock] * blocks)
  assert_causal(objective, seed=blocks)


def test_perfect_predictions_reach_minimum_loss_and_full_accuracy():
  """Predictions equal to their targets, other targets far: loss -> 0 and
  the label points at the right target."""
  rng = np.random.default_rng(0)
  batch, rows, cols, dim, offset = 3, 5, 4, 32, 2
  targets = 50.0 * rng.normal(size=(batch, rows, cols, dim)).astype(np.float32)
  preds = targets[:, offset:] / np.linalg.norm(targets[:, offset:], axis=-1,
                                               keepdims=True)
  losses, hits = infonce.contrastive_loss(
      tf.constant(preds, tf.float32), tf.constant(targets), offset)
  assert losses.shape == (batch * (rows - offset) * cols,)
  assert float(tf.reduce_max(losses)) < 1e-3
  assert float(tf.reduce_mean(hits)) == 1.0
  # Shifting the predictions by one row breaks both.
  losses, hits = infonce.contrastive_loss(
      tf.constant(targets[:, offset - 1:-1] / 50.0), tf.constant(targets),
      offset)
  assert float(tf.reduce_mean(losses)) > 10.0
  assert float(tf.reduce_mean(hits)) == 0.0
