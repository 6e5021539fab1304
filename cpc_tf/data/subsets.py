"""Labelled subsets for efficient classification (Section 2.2): a class-
balanced fraction of the training split plus a disjoint held-out validation
part, the same for the same seed on every machine, and nested: the 1% subset
lies inside the 2% subset of the same seed."""

from typing import Tuple

import numpy as np


def label_subset(labels: np.ndarray, fraction: float,
                 validation_fraction: float, seed: int
                 ) -> Tuple[np.ndarray, np.ndarray]:
  """Sorted (train, validation) indices into `labels`.

  Per class, one seeded permutation: its first validation_fraction goes to
  validation, and the train subset is the first `fraction` of the rest (at
  least one image per class), so a smaller fraction is a prefix of a larger.
  """
  if not 0 < fraction <= 1:
    raise ValueError(f"label_fraction must be in (0, 1], got {fraction}")
  if not 0 <= validation_fraction < 1:
    raise ValueError(
        f"validation_fraction must be in [0, 1), got {validation_fraction}")
  train, validation = [], []
  for label in np.unique(labels):
    members = np.flatnonzero(labels == label)
    # PCG64 seeded by (seed, class): identical on every platform.
    order = np.random.default_rng([seed, int(label)]).permutation(members)
    held_out = int(round(validation_fraction * len(order)))
    rest = order[held_out:]
    validation.append(order[:held_out])
    train.append(rest[:max(1, int(round(fraction * len(rest))))])
  return np.sort(np.concatenate(train)), np.sort(np.concatenate(validation))
