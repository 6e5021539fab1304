"""mAP against a NumPy reference written from the VOC devkit's definition."""

import numpy as np
import pytest

from cpc_tf.evaluation import mean_ap
from cpc_tf.evaluation.mean_ap import ImageBoxes


def reference_ap(detections, truths, cls, threshold=0.5):
  """VOC devkit voc_eval + voc_ap, as loops: (11-point AP, all-points AP)."""
  ranked = sorted(((d.scores[k], i, d.boxes[k])
                   for i, d in enumerate(detections)
                   for k in range(len(d.boxes)) if d.classes[k] == cls),
                  key=lambda item: -item[0])
  used = {i: [False] * len(t.boxes) for i, t in enumerate(truths)}
  npos = sum(1 for t in truths for k in range(len(t.boxes))
             if t.classes[k] == cls and not (t.difficult is not None
                                             and t.difficult[k]))
  tp, fp = [], []
  for _, i, box in ranked:
    best, best_k = 0.0, -1
    for k, gt in enumerate(truths[i].boxes):
      if truths[i].classes[k] != cls:
        continue
      ih = min(box[2], gt[2]) - max(box[0], gt[0])
      iw = min(box[3], gt[3]) - max(box[1], gt[1])
      inter = max(ih, 0) * max(iw, 0)
      union = ((box[2] - box[0]) * (box[3] - box[1])
               + (gt[2] - gt[0]) * (gt[3] - gt[1]) - inter)
      if inter / union > best:
        best, best_k = inter / union, k
    hard = (truths[i].difficult is not None and best_k >= 0
            and truths[i].difficult[best_k])
    if best > threshold and hard:
      tp.append(0)
      fp.append(0)
    elif best > threshold and not used[i][best_k]:
      used[i][best_k] = True
      tp.append(1)
      fp.append(0)
    else:
      tp.append(0)
      fp.append(1)
  tp, fp = np.cumsum(tp), np.cumsum(fp)
  rec = tp / npos
  prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
  eleven = 0.0
  for t in np.arange(0.0, 1.1, 0.1):
    p = np.max(prec[rec >= t]) if np.sum(rec >= t) > 0 else 0.0
    eleven += p / 11.0
  mrec = np.concatenate(([0.0], rec, [1.0]))
  mpre = np.concatenate(([0.0], prec, [0.0]))
  for i in range(mpre.size - 1, 0, -1):
    mpre[i - 1] = max(mpre[i - 1], mpre[i])
  i = np.where(mrec[1:] != mrec[:-1])[0]
  return eleven, np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])


def truth(boxes, classes, difficult=None):
  return ImageBoxes(np.array(boxes, np.float32).reshape(-1, 4),
                    np.array(classes), difficult=None if difficult is None
                    else np.array(difficult, bool))


def found(boxes, classes, scores):
  return ImageBoxes(np.array(boxes, np.float32).reshape(-1, 4),
                    np.array(classes), scores=np.array(scores, np.float32))


def test_perfect_detections_give_one():
  truths = [truth([[0, 0, 10, 10], [20, 20, 40, 50]], [0, 1]),
            truth([[5, 5, 30, 30]], [1])]
  detections = [found([[0, 0, 10, 10], [20, 20, 40, 50]], [0, 1], [0.9, 0.8]),
                found([[5, 5, 30, 30]], [1], [0.7])]
  result = mean_ap.mean_ap(mean_ap.average_precision(detections, truths, 2))
  assert result == {"map_11_point": 1.0, "map_all_points": 1.0}


def test_a_duplicate_detection_is_a_false_positive():
  truths = [truth([[0, 0, 10, 10]], [0])]
  # The duplicate outranks nothing: recall reaches 1 at precision 1 first.
  detections = [found([[0, 0, 10, 10], [0, 0, 10, 9]], [0, 0], [0.9, 0.8])]
  assert mean_ap.average_precision(detections, truths,
                                  1)["ap_all_points"] == [1.0]
  # Ranked first, the duplicate's box is matched and the better one is not.
  detections = [found([[0, 0, 10, 10], [0, 0, 10, 9]], [0, 0], [0.8, 0.9])]
  scores, outcomes, positives = mean_ap._match(detections, truths, 0, 0.5)
  assert positives == 1
  assert sorted(zip(-scores, outcomes)) == [(-0.9, 1), (-0.8, 0)]


def test_known_precision_recall_curve():
  # Ranked outcomes TP, FP, TP, FP, TP over 4 positives:
  # recall .25 .25 .5 .5 .75; precision 1 .5 .667 .5 .6.
  recall = np.array([0.25, 0.25, 0.5, 0.5, 0.75])
  precision = np.array([1, 0.5, 2 / 3, 0.5, 0.6])
  # 11 points: 1 at r = 0, .1, .2; 2/3 at .3, .4, .5; .6 at .6, .7; 0 after.
  assert mean_ap.eleven_point_ap(recall, precision) == pytest.approx(
      (3 + 2 + 1.2) / 11)
  # Area: .25 x 1 + .25 x 2/3 + .25 x .6.
  assert mean_ap.all_points_ap(recall, precision) == pytest.approx(
      0.25 + 0.25 * 2 / 3 + 0.15)


def test_difficult_boxes_are_ignored():
  truths = [truth([[0, 0, 10, 10], [50, 50, 60, 60]], [0, 0], [False, True])]
  detections = [found([[50, 50, 60, 60], [0, 0, 10, 10]], [0, 0], [0.9, 0.5])]
  result = mean_ap.average_precision(detections, truths, 1)
  assert result["ap_all_points"] == [1.0] and result["ap_11_point"] == [1.0]


def test_random_cases_match_the_reference():
  rng = np.random.default_rng(0)
  for _ in range(20):
    truths, detections = [], []
    for _ in range(4):
      corners = rng.uniform(0, 80, (5, 2))
      boxes = np.concatenate([corners, corners + rng.uniform(5, 30, (5, 2))], 1)
      classes = rng.integers(0, 3, 5)
      truths.append(truth(boxes, classes, rng.random(5) < 0.2))
      jitter = boxes[rng.integers(0, 5, 8)] + rng.normal(0, 4, (8, 4))
      detections.append(found(jitter, rng.integers(0, 3, 8), rng.random(8)))
    result = mean_ap.average_precision(detections, truths, 3)
    for cls in range(3):
      if not any(np.any((t.classes == cls) & ~t.difficult) for t in truths):
        continue
      eleven, area = reference_ap(detections, truths, cls)
      assert result["ap_11_point"][cls] == pytest.approx(eleven, abs=1e-9)
      assert result["ap_all_points"][cls] == pytest.approx(area, abs=1e-9)


def test_class_without_ground_truth_is_left_out_of_the_mean():
  truths = [truth([[0, 0, 10, 10]], [0])]
  detections = [found([[0, 0, 10, 10], [1, 1, 5, 5]], [0, 1], [0.9, 0.9])]
  per_class = mean_ap.average_precision(detections, truths, 2)
  assert np.isnan(per_class["ap_all_points"][1])
  assert mean_ap.mean_ap(per_class)["map_all_points"] == 1.0
