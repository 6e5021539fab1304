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
  targets = tf.one_hot(labels, num_classes)[:, None, :]         # [N, 1, C]
  weights = tf.Variable(tf.zeros([dim, count, num_classes]))
  bias = tf.Variable(tf.zeros([count, num_classes]))
  optimizer = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(
      learning_rate, steps, alpha=0.01))
  penalty = tf.constant(penalties, tf.float32)[:, None]          # [P, 1]

  def gradients():
    """d(objective)/d(weights, bias), written out: (softmax - one-hot) / N
    back through the linear map. X^T G as (G^T X)^T, because TF's MatMul
    with the large operand transposed (what autodiff of X W uses) was
    3-4x slower on a 2-core CPU."""
    logits = tf.reshape(tf.matmul(x, tf.reshape(weights, [dim, -1])),
                        [-1, count, num_classes]) + bias       # [N, P, C]
    errors = (tf.nn.softmax(logits) - targets) / len(features)  # [N, P, C]
    grad_weights = tf.transpose(tf.matmul(
        tf.reshape(errors, [-1, count * num_classes]), x,
        transpose_a=True))                                      # [D, P*C]
    grad_weights = (tf.reshape(grad_weights, [dim, count, num_classes])
                    + 2 * penalty * weights)
    return grad_weights, tf.reduce_sum(errors, axis=0)

  @tf.function
  def train(steps):
    for _ in tf.range(steps):
      optimizer.apply_gradients(zip(gradients(), [weights, bias]))
    grad_weights, grad_bias = gradients()
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
