"""--mode=detection, transfer to detection (Sections 2.2, 4.3): keras-hub's
RetinaNet with the encoder as its backbone, fixed (and with fine_tune then
trained too); mAP@0.5, 11-point and all-points, on a VOC-style test split."""

import dataclasses

import keras

from cpc_tf.configs import modes
from cpc_tf.configs import pretrain as config_lib
from cpc_tf.data import voc
from cpc_tf.evaluation import records
from cpc_tf.evaluation import retinanet
from cpc_tf.evaluation import task
from cpc_tf.models import encoder as encoder_lib
from cpc_tf.serving import encoder_dir


@task.register
class DetectionTask(task.Task):
  CONFIG = modes.DetectionConfig
  NAME = "RetinaNet detector"

  def run(self, config: modes.DetectionConfig, cache=None) -> dict:
    return _run(config)

  def describe(self, record):
    kind = self.NAME + (" (random encoder)" if record["random_init"] else "")
    return (f"{kind} on {record['dataset']} {record['test_split']}: mAP@0.5 "
            f"{record['test_map_all_points']:.4f} (all points), "
            f"{record['test_map_11_point']:.4f} (11-point)")


def _run(config: modes.DetectionConfig) -> dict:
  clock = task.WallClock()
  config.validate()
  pretrained = task.pretrained(config)
  data_dir = config.data_dir or pretrained.data_dir
  train_annotations, train_report = voc.load(config.detection_data,
                                             config.train_split, data_dir)
  test_annotations, test_report = voc.load(config.detection_data,
                                           config.test_split, data_dir)
  names = voc.class_names(train_annotations)
  # Seeded first: random_init's weights depend on the seed.
  keras.utils.set_random_seed(config.seed)
  encoder = encoder_dir.restore(pretrained, config.random_init)
  size = config.detection_image_size
  try:
    detector = retinanet.build_detector(
        encoder_lib.stage_maps(encoder, pretrained.encoder_config),
        pretrained.encoder_config, len(names), config.min_level,
        config.max_level, config.head_convs)
  except ValueError as e:
    raise config_lib.ConfigError(str(e)) from e
  train = retinanet.detection_dataset(
      train_annotations, names, size, config.batch_size, train=True,
      min_scale=config.min_scale, max_scale=config.max_scale,
      color_drop=config.color_drop, seed=config.seed)
  retinanet.train(detector, train, config.train_steps, config.learning_rate)
  metrics = retinanet.evaluate_map(detector, test_annotations, names, size,
                                config.batch_size)
  fixed = {}
  if config.fine_tune:
    # The fixed-backbone result comes for free on the way.
    fixed = {f"fixed_test_{name}": value for name, value in metrics.items()}
    print(f"with the encoder fixed: mAP@0.5 {metrics['map_all_points']:.4f} "
          "(all points)", flush=True)
    detector = retinanet.fine_tunable(detector, config.encoder_learning_rate)
    retinanet.train(detector, train, config.fine_tune_steps,
                 config.learning_rate)
    metrics = retinanet.evaluate_map(detector, test_annotations, names, size,
                                  config.batch_size)
  return records.record(
      config, pretrained, dataset=config.detection_data, classes=names,
      train_images=len(train_annotations),
      test_images=len(test_annotations),
      repairs={split: dataclasses.asdict(report) | {
          "skipped_files": len(report.skipped_files)} for split, report in
               (("train", train_report), ("test", test_report))},
      steps=config.train_steps,
      fine_tune_steps_taken=config.fine_tune_steps if config.fine_tune else 0,
      detector_params=detector.count_params(),
      wall_seconds=round(clock.seconds(), 1), **fixed,
      **{f"test_{name}": value for name, value in metrics.items()})
