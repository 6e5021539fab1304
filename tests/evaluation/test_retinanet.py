"""Detection transfer: RetinaNet on the pretrained encoder, data, end to end."""

import os

import keras
import numpy as np
import pytest
from PIL import Image

from cpc_tf.configs import pretrain as config_lib
from cpc_tf.evaluation import retinanet
from cpc_tf.models import encoder as encoder_lib
from cpc_tf.serving import encoder_dir
from cpc_tf.data import voc
from cpc_tf.configs import modes
from cpc_tf.evaluation import registry
from helpers import FRUIT, voc_xml


def tiny_voc(folder, count=6, size=(40, 48)):
  """Images with one bright rectangle each, annotated as 'box'."""
  rng = np.random.default_rng(0)
  for i in range(count):
    pixels = np.zeros(size + (3,), np.uint8)
    top, left = rng.integers(0, 15, 2)
    pixels[top:top + 20, left:left + 25] = 255
    Image.fromarray(pixels).save(os.path.join(folder, f"{i}.png"))
    with open(os.path.join(folder, f"{i}.xml"), "w") as f:
      f.write(voc_xml(f"{i}.png", size,
                      [("box", 0, left + 1, top + 1, left + 25, top + 20)]))
  return voc.load(folder, "train")[0]


def trunk_weights(detector):
  return [w.copy() for w in detector.trunk.get_weights()]


@pytest.mark.slow
def test_backbone_is_the_pretrained_encoder_fixed_then_fine_tuned(
    pretrained, tmp_path):
  config, weights = pretrained
  encoder = encoder_dir.restore(config)
  levels = retinanet.stage_levels(config.encoder_config)
  detector = retinanet.build_detector(
      encoder_lib.stage_maps(encoder, config.encoder_config),
      config.encoder_config,
      num_classes=1, min_level=levels[-1], max_level=levels[-1] + 1,
      head_convs=1)
  # The trunk holds exactly the checkpoint's encoder weights (the pooling
  # after it has none).
  for got, expected in zip(detector.trunk.get_weights(), weights):
    np.testing.assert_array_equal(got, expected)
  annotations = tiny_voc(str(tmp_path))
  data = retinanet.detection_dataset(annotations, ["box"], 32, 2, train=True,
                                  min_scale=0.8, max_scale=1.2,
                                  color_drop=0.5, seed=0)
  heads_before = [w.copy() for w in detector.classification_head.get_weights()]
  retinanet.train(detector, data, steps=2, learning_rate=1e-3)
  for got, expected in zip(trunk_weights(detector), weights):
    np.testing.assert_array_equal(got, expected)      # fixed: unchanged
  assert any(not np.array_equal(a, b) for a, b in zip(
      detector.classification_head.get_weights(), heads_before))

  detector = retinanet.fine_tunable(detector, backbone_learning_rate=1e-4)
  retinanet.train(detector, data, steps=2, learning_rate=1e-3)
  changed = [not np.array_equal(a, b)
             for a, b in zip(trunk_weights(detector), weights)]
  assert all(changed[i] for i, w in enumerate(weights) if w.size > 1)
  # Adam's first steps move each weight by about its learning rate.
  kernel = next(i for i, w in enumerate(weights) if w.ndim == 4)
  step = np.abs(trunk_weights(detector)[kernel] - weights[kernel]).max()
  assert 1e-5 < step < 5e-4


@pytest.mark.slow
def test_detector_learns_a_trivial_set(tmp_path):
  """Bright rectangles on black: 100 steps take mAP from about 0 to well
  above it on the training images (the whole path learns and is scored)."""
  annotations = tiny_voc(str(tmp_path), count=16)
  config = encoder_lib.encoder_config("resnet50", width=8, blocks=(1, 1, 1, 1),
                                      stem="imagenet")
  keras.utils.set_random_seed(0)   # before the encoder: its init decides
  encoder = encoder_lib.build_encoder(config)
  # Two pyramid levels (P3, P4): with P5 too, compiling took half as long
  # again and 100 steps reached a lower mAP.
  detector = retinanet.build_detector(encoder_lib.stage_maps(encoder, config),
                                   config, 1, 3, 4, head_convs=1)
  before = retinanet.evaluate_map(detector, annotations, ["box"], 64, 8)
  detector = retinanet.fine_tunable(detector, backbone_learning_rate=1e-3)
  data = retinanet.detection_dataset(annotations, ["box"], 64, 8, train=True,
                                  seed=0)
  retinanet.train(detector, data, steps=100, learning_rate=1e-3)
  after = retinanet.evaluate_map(detector, annotations, ["box"], 64, 8)
  assert before["map_all_points"] < 0.1 < 0.25 < after["map_all_points"]


def test_dataset_boxes_follow_the_resize_and_the_flip(tmp_path):
  annotations = tiny_voc(str(tmp_path), count=1, size=(40, 80))
  (box,) = annotations[0].boxes
  images, targets = next(iter(retinanet.detection_dataset(
      annotations, ["box"], 32, 1, train=False)))
  expected = box * [32 / 40, 32 / 80, 32 / 40, 32 / 80]
  np.testing.assert_allclose(targets["boxes"][0, 0], expected, rtol=1e-5)
  assert targets["labels"][0, 0] == 0 and np.all(targets["labels"][0, 1:] == -1)
  # The bright rectangle is where the box says.
  top, left, bottom, right = np.round(expected).astype(int)
  assert images[0, top + 1:bottom - 1, left + 1:right - 1].numpy().min() > 0.9
  # Training: every kept box still frames the bright pixels (after flips,
  # scaling and crops); colour dropping off so brightness is comparable.
  train = retinanet.detection_dataset(annotations, ["box"], 32, 1, train=True,
                                   min_scale=0.9, max_scale=1.1, seed=1)
  checked = 0
  for images, targets in train.take(8):
    for box, label in zip(targets["boxes"][0].numpy(), targets["labels"][0]):
      if label < 0:
        continue
      top, left, bottom, right = np.round(box).astype(int)
      inside = images[0, top + 1:bottom - 1, left + 1:right - 1].numpy()
      if inside.size:
        assert inside.mean() > 0.8
        checked += 1
  # Scales 0.9-1.1 keep the 20x40 box in every one of the 8 views.
  assert checked == 8


def test_pyramid_levels_the_encoder_cannot_give_are_clear_errors(pretrained):
  config, _ = pretrained
  levels = retinanet.stage_levels(config.encoder_config)
  with pytest.raises(ValueError, match="--min_level"):
    retinanet.check_levels(config.encoder_config, levels[-1] + 1, 7)
  with pytest.raises(ValueError, match="--max_level<=4"):
    retinanet.check_levels(config.encoder_config, levels[-1], 7)


def detect_with(config, **settings):
  """The detection task on config's encoder: a 32-pixel RetinaNet on its
  last stage, one head conv."""
  levels = retinanet.stage_levels(config.encoder_config)
  return registry.run(modes.DetectionConfig(
      model_dir=config.model_dir, detection_image_size=32,
      min_level=levels[-1], max_level=levels[-1] + 1, head_convs=1,
      train_steps=2, **settings))


@pytest.mark.slow
def test_detection_end_to_end_on_the_fruit_set(pretrained):
  config, _ = pretrained
  record = detect_with(config, detection_data=FRUIT, batch_size=8,
                       fine_tune=True, fine_tune_steps=1)
  assert record["mode"] == "detection" and record["fine_tune"]
  assert (record["train_images"], record["test_images"]) == (240, 60)
  assert record["classes"] == ["apple", "banana", "orange"]
  for name in ("test_map_all_points", "test_map_11_point",
               "test_ap_all_points_apple", "fixed_test_map_all_points"):
    assert 0.0 <= record[name] <= 1.0


@pytest.mark.slow
def test_detection_reads_tfds_voc2007(pretrained, voc2007):
  config, _ = pretrained
  _, data_dir = voc2007
  record = detect_with(config, detection_data="tfds:voc/2007",
                       data_dir=data_dir, train_split="train+validation",
                       batch_size=2)
  assert (record["train_images"], record["test_images"]) == (3, 2)
  assert record["classes"] == ["cat", "dog", "person"]
  assert 0.0 <= record["test_map_all_points"] <= 1.0


def test_detection_needs_its_data(pretrained):
  config, _ = pretrained
  with pytest.raises(config_lib.ConfigError,
                     match="--mode=detection needs --detection_data"):
    modes.DetectionConfig(model_dir=config.model_dir).validate()
