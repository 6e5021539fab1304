"""The cached probe's fit: multinomial logistic regressions, one per L2
penalty, solved together by full-batch Adam on the standardised readouts;
the penalty best on the held-out part is reported."""

from typing import Dict, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from cpc_tf.configs.modes import PENALTIES
from cpc_tf.evaluation.feature_cache import CachedFeatures
from cpc_tf.evaluation.feature_cache import standardise


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
