"""Mean average precision at an IoU threshold, as PASCAL VOC defines it.

Per class, detections of all images are ranked by score; each is a true
positive if its best-overlapping ground-truth box of that class in its image
has IoU above the threshold (VOC: strictly above 0.5) and was not matched by a
higher-scored detection, otherwise a false positive (so duplicates count
against it). Boxes marked "difficult" are neither: a detection matched to one
is ignored and they are not counted in the recall's denominator.

Two areas under the precision-recall curve: the VOC2007 "11-point" mean of
the interpolated precision at recall 0, 0.1, ..., 1, and the "all-points"
area (VOC2010 on) under the interpolated (monotone) precision curve.
Boxes are [ymin, xmin, ymax, xmax] in continuous pixel coordinates: areas are
(ymax - ymin) * (xmax - xmin), without the devkit's +1 on integer pixels.
"""

import dataclasses
from typing import Dict, List, Sequence

import numpy as np


@dataclasses.dataclass
class ImageBoxes:
  """Boxes of one image: [K, 4] as (ymin, xmin, ymax, xmax), a class per box,
  and a score (detections) or a difficult flag (ground truth)."""
  boxes: np.ndarray
  classes: np.ndarray
  scores: np.ndarray = None
  difficult: np.ndarray = None


def iou_matrix(boxes: np.ndarray, others: np.ndarray) -> np.ndarray:
  """[A, 4], [B, 4] -> [A, B] intersection over union."""
  top = np.maximum(boxes[:, None, 0], others[None, :, 0])
  left = np.maximum(boxes[:, None, 1], others[None, :, 1])
  bottom = np.minimum(boxes[:, None, 2], others[None, :, 2])
  right = np.minimum(boxes[:, None, 3], others[None, :, 3])
  inter = np.clip(bottom - top, 0, None) * np.clip(right - left, 0, None)
  area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
  union = area(boxes)[:, None] + area(others)[None, :] - inter
  return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def eleven_point_ap(recall: np.ndarray, precision: np.ndarray) -> float:
  """VOC2007: mean over r in {0, 0.1, ..., 1} of the max precision at
  recall >= r."""
  points = [precision[recall >= r].max() if np.any(recall >= r) else 0.0
            for r in np.linspace(0, 1, 11)]
  return float(np.mean(points))


def all_points_ap(recall: np.ndarray, precision: np.ndarray) -> float:
  """Area under the precision-recall curve made monotone from the right."""
  recall = np.concatenate([[0.0], recall, [1.0]])
  precision = np.concatenate([[0.0], precision, [0.0]])
  precision = np.maximum.accumulate(precision[::-1])[::-1]
  steps = np.flatnonzero(recall[1:] != recall[:-1])
  widths = recall[steps + 1] - recall[steps]
  return float(np.sum(widths * precision[steps + 1]))


def _match(detections: Sequence[ImageBoxes], truths: Sequence[ImageBoxes],
           cls: int, iou_threshold: float):
  """Scores and 1 (true positive) / 0 (false) / -1 (ignored) per detection of
  `cls`, and the number of non-difficult ground-truth boxes."""
  scores, outcomes, positives = [], [], 0
  for found, truth in zip(detections, truths):
    is_true = truth.classes == cls
    true_boxes = truth.boxes[is_true]
    difficult = (truth.difficult[is_true] if truth.difficult is not None
                 else np.zeros(len(true_boxes), bool))
    positives += int(np.sum(~difficult))
    mine = np.flatnonzero(found.classes == cls)
    mine = mine[np.argsort(-found.scores[mine], kind="stable")]
    overlaps = (iou_matrix(found.boxes[mine], true_boxes) if len(true_boxes)
                else np.zeros((len(mine), 0)))
    taken = np.zeros(len(true_boxes), bool)
    for row, det in enumerate(mine):
      scores.append(found.scores[det])
      best = int(np.argmax(overlaps[row])) if len(true_boxes) else -1
      if best < 0 or overlaps[row, best] <= iou_threshold:
        outcomes.append(0)
      elif difficult[best]:
        outcomes.append(-1)
      elif taken[best]:
        outcomes.append(0)            # a duplicate of a matched box
      else:
        taken[best] = True
        outcomes.append(1)
  return np.array(scores), np.array(outcomes), positives


def average_precision(detections: Sequence[ImageBoxes],
                      truths: Sequence[ImageBoxes], num_classes: int,
                      iou_threshold: float = 0.5) -> Dict[str, List[float]]:
  """Per-class AP (11-point and all-points) over images given in the same
  order in `detections` and `truths`; NaN for a class with no ground truth."""
  result = {"ap_11_point": [], "ap_all_points": []}
  for cls in range(num_classes):
    scores, outcomes, positives = _match(detections, truths, cls, iou_threshold)
    if positives == 0:
      result["ap_11_point"].append(float("nan"))
      result["ap_all_points"].append(float("nan"))
      continue
    # Ranked over all images; within an image the order is kept (stable).
    order = np.argsort(-scores, kind="stable")
    outcomes = outcomes[order]
    outcomes = outcomes[outcomes >= 0]
    true_pos = np.cumsum(outcomes == 1)
    false_pos = np.cumsum(outcomes == 0)
    recall = true_pos / positives
    precision = true_pos / np.maximum(true_pos + false_pos, 1e-12)
    result["ap_11_point"].append(eleven_point_ap(recall, precision))
    result["ap_all_points"].append(all_points_ap(recall, precision))
  return result


def mean_ap(per_class: Dict[str, List[float]]) -> Dict[str, float]:
  """Mean over classes that have ground truth."""
  return {f"m{name}": float(np.nanmean(values))
          for name, values in per_class.items()}
