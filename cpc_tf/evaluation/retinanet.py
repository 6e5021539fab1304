"""Transfer to detection (Sections 2.2, 4.3): keras-hub's RetinaNet on the CPC
encoder applied to whole images as a fully convolutional network.

annotations -> images resized to image_size (train: flip, scale, colour
dropping) -> encoder trunk: one map per stage -> feature pyramid -> box and
class heads -> NMS -> mAP@0.5 against the original boxes (mean_ap).
"""

import math
from typing import Dict, List, Optional, Sequence

import keras
import keras_hub
import numpy as np
import tensorflow as tf

from cpc_tf.data import augment
from cpc_tf.train import backbone_step
from cpc_tf.evaluation import mean_ap
from cpc_tf.models.encoder import EncoderConfig
from cpc_tf.data.sources import decode_rgb
from cpc_tf.data.voc import Annotation


def stage_levels(config: EncoderConfig) -> List[int]:
  """Pyramid level (log2 of the stride) of each encoder stage's map."""
  first = 2 if config.stem == "imagenet" else 0     # stem conv + pool: /4
  return [first + s for s in range(len(config.stages))]


def check_levels(config: EncoderConfig, min_level: int, max_level: int):
  """Clear errors for pyramid levels the encoder cannot give."""
  levels = stage_levels(config)
  if not levels[0] <= min_level <= min(levels[-1], max_level):
    raise ValueError(
        f"--min_level={min_level}: the encoder's stages give levels "
        f"{levels} (stem={config.stem}); choose one of them, at most "
        f"--max_level={max_level}")
  if levels[-1] < 5 <= max_level:
    raise ValueError(
        f"--max_level={max_level}: keras-hub's RetinaNet adds levels above 5 "
        f"only to a backbone reaching level 5, and this encoder's last stage "
        f"is level {levels[-1]} (stem={config.stem}); use --max_level<=4")


class CPCRetinaNet(keras_hub.models.RetinaNetObjectDetector):
  """RetinaNet that knows its encoder trunk, so that fine_tunable() can
  train it at its own (smaller) learning rate: the trunk's variables then
  get an Adam of their own and the compiled optimizer trains the rest."""

  def __init__(self, *args, trunk: keras.Model = None, **kwargs):
    super().__init__(*args, **kwargs)
    self.trunk = trunk
    self.backbone_optimizer = None

  def train_step(self, data):
    if self.backbone_optimizer is None or not self.trunk.trainable:
      return super().train_step(data)
    return backbone_step.train_step(self, data, self.trunk,
                                    self.backbone_optimizer)


def build_detector(trunk: keras.Model, config: EncoderConfig, num_classes: int,
                   min_level: int = 3, max_level: int = 7,
                   head_convs: int = 4,
                   score_threshold: float = 0.05) -> CPCRetinaNet:
  """RetinaNet on the encoder trunk's stage maps (levels from stage_levels),
  the trunk frozen."""
  check_levels(config, min_level, max_level)
  trunk.pyramid_outputs = {f"P{level}": output for level, output
                           in zip(stage_levels(config), trunk.outputs)}
  trunk.trainable = False
  backbone = keras_hub.models.RetinaNetBackbone(
      image_encoder=trunk, min_level=min_level, max_level=max_level,
      use_p5=False, image_shape=(None, None, 3))
  decoder = keras_hub.layers.NonMaxSuppression(
      bounding_box_format="yxyx", from_logits=True,
      confidence_threshold=score_threshold, max_detections=100)
  return CPCRetinaNet(
      backbone=backbone, num_classes=num_classes, bounding_box_format="yxyx",
      pre_logits_num_conv_layers=head_convs, prediction_decoder=decoder,
      trunk=trunk)


def fine_tunable(detector: CPCRetinaNet,
                 backbone_learning_rate: float) -> CPCRetinaNet:
  """Section 2.2: after training with the backbone fixed, the backbone
  trains too, with Adam at its own learning rate."""
  detector.trunk.trainable = True
  detector.backbone_optimizer = backbone_step.build_optimizer(
      detector.trunk, backbone_learning_rate)
  return detector


def _scale_and_crop(image, boxes, size, min_scale, max_scale):
  """Scale augmentation: resize to size x scale, then a random size x size
  crop (or zero padding below and right when smaller); boxes follow and are
  clipped."""
  scale = tf.random.uniform([], min_scale, max_scale)
  scaled = tf.cast(tf.round(size * scale), tf.int32)
  image = tf.image.resize(image, [scaled, scaled])
  boxes = boxes * tf.cast(scaled, tf.float32) / size
  limit = tf.maximum(scaled - size, 0)
  top = tf.random.uniform([], 0, limit + 1, dtype=tf.int32)
  left = tf.random.uniform([], 0, limit + 1, dtype=tf.int32)
  image = tf.image.pad_to_bounding_box(
      image[top:top + size, left:left + size], 0, 0, size, size)
  offset = tf.cast(tf.stack([top, left, top, left]), tf.float32)
  return image, tf.clip_by_value(boxes - offset, 0.0, float(size))


def _augment(image, boxes, size, min_scale, max_scale, color_drop):
  """Flip, scale and colour dropping of one [size, size, 3] image."""
  if tf.random.uniform([]) < 0.5:
    image = image[:, ::-1]
    boxes = tf.stack([boxes[:, 0], size - boxes[:, 3], boxes[:, 2],
                      size - boxes[:, 1]], axis=1)
  if (min_scale, max_scale) != (1.0, 1.0):
    image, boxes = _scale_and_crop(image, boxes, size, min_scale, max_scale)
  if color_drop > 0:
    image = augment.color_drop(image[None], color_drop)[0]
  return image, boxes


def detection_dataset(annotations: Sequence[Annotation], class_names: List[str],
                      image_size: int, batch_size: int, train: bool,
                      min_scale: float = 1.0, max_scale: float = 1.0,
                      color_drop: float = 0.0, max_boxes: int = 32,
                      seed: Optional[int] = None) -> tf.data.Dataset:
  """(images [B, S, S, 3] in [0, 1], {"boxes": [B, K, 4] yxyx pixels of the
  resized image, "labels": [B, K], -1 for padding}); test: in file order."""
  index = {name: i for i, name in enumerate(class_names)}
  in_memory = annotations[0].encoded is not None   # from TFDS
  files = [a.encoded if in_memory else a.image_path for a in annotations]
  scales = [[image_size / a.height, image_size / a.width] * 2
            for a in annotations]
  boxes = tf.ragged.constant([a.boxes.tolist() for a in annotations],
                             ragged_rank=1, inner_shape=(4,), dtype=tf.float32)
  labels = tf.ragged.constant([[index.get(n, -1) for n in a.names]
                               for a in annotations], dtype=tf.int32)
  dataset = tf.data.Dataset.from_tensor_slices(
      (files, tf.constant(scales, tf.float32), boxes, labels))
  if train:
    dataset = dataset.shuffle(len(files), seed=seed,
                              reshuffle_each_iteration=seed is None).repeat()

  def load(file, scale, image_boxes, image_labels):
    encoded = file if in_memory else tf.io.read_file(file)
    image = tf.image.convert_image_dtype(decode_rgb(encoded), tf.float32)
    image = tf.image.resize(image, [image_size, image_size])
    image_boxes = image_boxes * scale
    if train:
      image, image_boxes = _augment(image, image_boxes, image_size, min_scale,
                                    max_scale, color_drop)
    # Boxes cropped away (or to a sliver) by the scale augmentation go.
    keep = ((image_boxes[:, 2] - image_boxes[:, 0] >= 1)
            & (image_boxes[:, 3] - image_boxes[:, 1] >= 1)
            & (image_labels >= 0))
    return image, {"boxes": tf.boolean_mask(image_boxes, keep)[:max_boxes],
                   "labels": tf.boolean_mask(image_labels, keep)[:max_boxes]}

  dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE,
                        deterministic=True)
  dataset = dataset.padded_batch(
      batch_size,
      padded_shapes=([image_size, image_size, 3],
                     {"boxes": [max_boxes, 4], "labels": [max_boxes]}),
      padding_values=(0.0, {"boxes": -1.0, "labels": -1}))
  return dataset.prefetch(tf.data.AUTOTUNE)


def predict_boxes(detector: CPCRetinaNet, annotations: Sequence[Annotation],
                  image_size: int, batch_size: int) -> List[mean_ap.ImageBoxes]:
  """Detections per image, in the image's own pixel coordinates."""
  dataset = detection_dataset(annotations, [], image_size, batch_size,
                              train=False)
  found = []
  # Eagerly, batch by batch: keras-hub's NMS needs a known batch size,
  # which predict()'s graph does not give it.
  for images, _ in dataset:
    decoded = detector.decode_predictions(detector(images, training=False),
                                          images)
    decoded = {name: np.asarray(value) for name, value in decoded.items()}
    found += [{name: value[i] for name, value in decoded.items()}
              for i in range(len(images))]
  results = []
  for a, image in zip(annotations, found):
    count = int(image["num_detections"])
    scale = np.array([a.height, a.width] * 2, np.float32) / image_size
    results.append(mean_ap.ImageBoxes(
        boxes=image["boxes"][:count] * scale,
        classes=image["labels"][:count].astype(int),
        scores=image["confidence"][:count]))
  return results


def evaluate_map(detector: CPCRetinaNet, annotations: Sequence[Annotation],
                 class_names: List[str], image_size: int,
                 batch_size: int) -> Dict[str, object]:
  """mAP@0.5 (11-point and all-points), overall and per class."""
  index = {name: i for i, name in enumerate(class_names)}
  truths = [mean_ap.ImageBoxes(
                boxes=a.boxes, difficult=a.difficult,
                classes=np.array([index.get(n, -1) for n in a.names]))
            for a in annotations]
  detections = predict_boxes(detector, annotations, image_size, batch_size)
  per_class = mean_ap.average_precision(detections, truths, len(class_names))
  return {**mean_ap.mean_ap(per_class),
          **{f"ap_all_points_{name}": value for name, value
             in zip(class_names, per_class["ap_all_points"])},
          **{f"ap_11_point_{name}": value for name, value
             in zip(class_names, per_class["ap_11_point"])}}


def train(detector: CPCRetinaNet, dataset: tf.data.Dataset, steps: int,
          learning_rate: float, callbacks=()):
  """`steps` of Adam on the detector's trainable variables (the backbone's
  with their own optimizer, if it has one)."""
  # keras-hub's losses: Huber on the boxes, focal loss on the classes.
  detector.compile(optimizer=keras.optimizers.Adam(learning_rate))
  # One log line per "epoch" of up to 50 steps.
  per_line = math.gcd(steps, 50)
  detector.fit(dataset, epochs=steps // per_line, steps_per_epoch=per_line,
               verbose=2, shuffle=False, callbacks=list(callbacks))
