"""Classification on the encoder's latents (Section 2.2, A.3, A.4):
patches -> encoder (fixed, or fine-tuned at its own rate) -> latents ->
head -> logits; training with early stopping on the held-out part; and
ClassificationTask, the run the linear, efficient and supervised modes
share (subsets, pipelines, training, test and record)."""

from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from cpc_tf.data import pipelines
from cpc_tf.data import subsets
from cpc_tf.data.augment import PatchAugment
from cpc_tf.data.patches import PatchGrid
from cpc_tf.evaluation import feature_cache
from cpc_tf.evaluation import records
from cpc_tf.evaluation import task
from cpc_tf.models import heads
from cpc_tf.models.encoder import encode_patches
from cpc_tf.train import backbone_step


class PatchClassifier(keras.Model):
  """Logits of a head on the encoder's latent grid.

  The encoder is frozen unless fine_tune (then it also runs in training
  mode); with an encoder_learning_rate it gets its own Adam at that rate
  while the compiled optimizer trains the head (Section 2.2: fine-tuning
  uses a smaller learning rate for the encoder).
  """

  def __init__(self, encoder: keras.Model, head: keras.Model,
               fine_tune: bool = False,
               encoder_learning_rate: Optional[float] = None, **kwargs):
    super().__init__(**kwargs)
    self.encoder = encoder
    self.head = head
    self.fine_tune = fine_tune
    self.encoder.trainable = fine_tune
    self.encoder_optimizer = None
    if fine_tune and encoder_learning_rate is not None:
      self.encoder_optimizer = backbone_step.build_optimizer(
          encoder, encoder_learning_rate)

  def call(self, patches, training=False):
    latents = encode_patches(self.encoder, patches,           # [B, G, G, D]
                             training=training and self.fine_tune)
    return self.head(latents, training=training)

  def train_step(self, data):
    if self.encoder_optimizer is None:
      return super().train_step(data)
    return backbone_step.train_step(self, data, self.encoder,
                                    self.encoder_optimizer)


def use_clean_statistics(model: PatchClassifier, clean: tf.data.Dataset):
  """Fixes the linear head's test-time normalisation to the statistics of
  the latents of `clean`, (patches, label) batches of evaluation views.
  Training still normalises with each batch's statistics (A.3)."""
  statistics = feature_cache.cache_features(
      feature_cache.latent_cells(model.encoder), clean)
  heads.fix_norm_statistics(model.head, statistics.cell_mean,
                            statistics.cell_variance)


def accuracy_metrics():
  return [keras.metrics.SparseCategoricalAccuracy(name="top1"),
          keras.metrics.SparseTopKCategoricalAccuracy(5, name="top5")]


def compile_classifier(model: PatchClassifier, learning_rate: float):
  """Adam on the head (and on the encoder when it has no optimizer of its
  own); cross-entropy; top-1 and top-5."""
  model.compile(
      optimizer=keras.optimizers.Adam(learning_rate),
      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
      metrics=accuracy_metrics())


def train_with_early_stopping(model: keras.Model, train: tf.data.Dataset,
                              held_out: tf.data.Dataset, max_steps: int,
                              eval_every: int, patience: int, callbacks=()
                              ) -> int:
  """Trains for at most max_steps, in rounds of eval_every steps each ended
  by a validation; stops after `patience` validations without a better
  top-1 and keeps the best weights. Returns the steps taken."""
  if not 0 < eval_every <= max_steps:
    raise ValueError(f"eval_every ({eval_every}) must be in [1, max_steps "
                     f"({max_steps})]")
  stopping = keras.callbacks.EarlyStopping(
      monitor="val_top1", mode="max", patience=patience,
      restore_best_weights=True)
  history = model.fit(train, epochs=max_steps // eval_every,
                      steps_per_epoch=eval_every, validation_data=held_out,
                      callbacks=[*callbacks, stopping], shuffle=False,
                      verbose=2)
  return len(history.history["loss"]) * eval_every


def fine_tune(model: PatchClassifier, train: tf.data.Dataset,
              held_out: tf.data.Dataset, learning_rate: float,
              encoder_learning_rate: float, max_steps: int, eval_every: int,
              patience: int, callbacks=()):
  """Section 2.2: from the fixed-encoder solution, train encoder and head
  together (the encoder at its own smaller rate) with early stopping on the
  held-out data. Returns (the fine-tuned model, steps taken)."""
  tuned = PatchClassifier(model.encoder, model.head, fine_tune=True,
                          encoder_learning_rate=encoder_learning_rate)
  compile_classifier(tuned, learning_rate)
  steps = train_with_early_stopping(tuned, train, held_out, max_steps,
                                    eval_every, patience, callbacks)
  return tuned, steps


class ClassificationTask(task.Task):
  """Trains a classifier on a label subset and tests it. Subclasses build
  the classifier (build) and may prepare it (before_training), keep what
  it trained (after_training) or fine-tune it (fine_tuned)."""

  def grid(self, config, pretrained) -> PatchGrid:
    """The patches the classifier sees: the encoder's grid."""
    del config
    return pretrained.grid

  def build(self, config, pretrained, dataset, data_dir, classes):
    """(the compiled PatchClassifier, the config of its encoder)."""
    raise NotImplementedError

  def before_training(self, model, config, clean_train):
    """clean_train: the labelled training images' evaluation views."""

  def after_training(self, model, config, encoder_config, steps) -> dict:
    """Record fields of what was kept after training."""
    del model, config, encoder_config, steps
    return {}

  def fine_tuned(self, model, config, train, held_out):
    """(the model to test, fine-tuning steps taken)."""
    del config, train, held_out
    return model, 0

  def run(self, config, cache=None) -> dict:
    clock = task.WallClock()
    config.validate()
    pretrained = task.pretrained(config)
    dataset, data_dir, train_source = task.labelled_data(config, pretrained)
    train_indices, validation_indices = None, np.array([], int)
    if config.label_fraction < 1 or config.validation_fraction > 0:
      train_indices, validation_indices = subsets.label_subset(
          train_source.labels(), config.label_fraction,
          config.validation_fraction, config.seed)
    keras.utils.set_random_seed(config.seed)
    grid = self.grid(config, pretrained)

    def labelled(split, train, indices=None):
      return pipelines.classification_dataset(
          dataset, split, data_dir, grid, config.batch_size, train=train,
          min_crop_area=pretrained.min_crop_area,
          augment=(pretrained.augment if config.patch_augment
                   else PatchAugment()),
          indices=indices, seed=config.seed)

    train = labelled(config.train_split, True, train_indices)
    held_out = (labelled(config.train_split, False, validation_indices)
                if len(validation_indices) else None)
    model, encoder_config = self.build(config, pretrained, dataset, data_dir,
                                       train_source.num_classes)
    self.before_training(model, config,
                         labelled(config.train_split, False, train_indices))
    steps = config.train_steps
    if held_out is not None:
      steps = train_with_early_stopping(
          model, train, held_out, config.train_steps, config.eval_every,
          config.patience)
    else:
      model.fit(train, epochs=1, steps_per_epoch=config.train_steps,
                shuffle=False, verbose=2)
    kept = self.after_training(model, config, encoder_config, steps)
    model, fine_tune_steps = self.fine_tuned(model, config, train, held_out)

    metrics = model.evaluate(labelled(config.test_split, False),
                             return_dict=True, verbose=0)
    validation = {}
    if held_out is not None:
      scores = model.evaluate(held_out, return_dict=True, verbose=0)
      validation = {"validation_top1": scores["top1"],
                    "validation_top5": scores["top5"]}
    return records.record(
        config, pretrained, self.method(config), **self.record_fields(),
        dataset=dataset, data_dir=data_dir, steps=steps,
        fine_tune_steps_taken=fine_tune_steps,
        train_examples=(train_source.num_examples if train_indices is None
                        else len(train_indices)), **validation,
        classifier_params=model.count_params(),
        wall_seconds=round(clock.seconds(), 1), **kept,
        test_top1=metrics["top1"], test_top5=metrics["top5"],
        test_loss=metrics["loss"])

  def record_fields(self) -> dict:
    """Fields every record of this task holds."""
    return {}
