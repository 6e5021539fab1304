"""What the evaluation tasks share: the encoder's pretraining config, the
labelled data of a classification evaluation, and the record of a run."""

import dataclasses
import json

from cpc_tf import config as config_lib
from cpc_tf import encoder_dir
from cpc_tf import sources
from cpc_tf.tasks import configs


def pretrained(config) -> config_lib.PretrainConfig:
  """The pretraining config of config's encoder: its model_dir's, or, for an
  evaluation without trained weights, its pretraining flagfile's."""
  if config.model_dir:
    return encoder_dir.load_config(config.model_dir)
  return encoder_dir.from_flagfile(config.pretrain_flagfile)


def labelled_data(config, pretrained: config_lib.PretrainConfig):
  """(dataset, data_dir, training split's source) of a classification
  evaluation, both splits checked to exist and to be labelled."""
  dataset = config.dataset or pretrained.dataset
  data_dir = config.data_dir or pretrained.data_dir
  train_source = sources.get_source(dataset, config.train_split, data_dir)
  sources.get_source(dataset, config.test_split, data_dir)
  if train_source.num_classes < 2:
    raise sources.DataError(f"{dataset} {config.train_split} has no class "
                            "labels to evaluate with")
  return dataset, data_dir, train_source


def settings(config) -> dict:
  """An evaluation's mode and settings, as records and trained_by.json hold
  them."""
  return {"mode": config.MODE, **dataclasses.asdict(config)}


def record(config, pretrained: config_lib.PretrainConfig, **metrics) -> dict:
  """A result record: the mode, its settings, the encoder's pretraining
  config, what trained_by.json says of a saved encoder and the metrics."""
  trained_by = config.model_dir and encoder_dir.trained_by(config.model_dir)
  return {**settings(config), **metrics,
          "pretrain_config": dataclasses.asdict(pretrained),
          **({"encoder_trained_by": trained_by} if trained_by else {})}



def identity(record: dict) -> str:
  """A run's resolved settings as text: equal texts, the same run. Its
  encoder's pretraining config (where it was written aside) and every
  setting of its mode, a setting a record predates at its default, the
  dataset and data directory as the run resolved them. A record of
  run_ladder.py's pretraining (kind "ladder_pretrain") is its config."""
  pretrain = {k: v for k, v in record["pretrain_config"].items()
              if k != "model_dir"}
  if "mode" not in record:
    return json.dumps({"kind": record["kind"], "pretrain": pretrain},
                      sort_keys=True)
  settings = {field.name: record.get(field.name, field.default)
              for field in dataclasses.fields(configs.CONFIGS[record["mode"]])
              if field.name not in ("model_dir", "results_file")}
  for name in ("dataset", "data_dir"):
    if name in settings:
      settings[name] = settings[name] or pretrain[name]
  return json.dumps({"mode": record["mode"], "pretrain": pretrain,
                     "settings": settings}, sort_keys=True)
