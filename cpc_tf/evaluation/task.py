"""An evaluation task: one run_eval.py mode, as a class that carries its
config class, its display name, the data-efficiency curve's methods it
offers, and run(config) -> record. Tasks register themselves; registry.py
finds them by mode."""

import dataclasses
import time
from typing import Dict, List, Optional, Tuple

from cpc_tf.configs import pretrain as config_lib
from cpc_tf.data import sources
from cpc_tf.serving import encoder_dir

# mode -> the task's instance, filled by @register.
TASKS: Dict[str, "Task"] = {}


@dataclasses.dataclass(frozen=True)
class CurveMethod:
  """A line of the data-efficiency curve: the task's run_eval.py flags that
  make it, its legend and its plot style (colour, line, marker)."""
  args: Tuple[str, ...]
  label: str
  style: Tuple[str, str, str]


class Task:
  """One evaluation protocol. Subclasses set CONFIG (a configs.modes class),
  NAME and METHODS, and implement run() and, if they offer curve methods,
  method()."""
  CONFIG: type = None
  NAME: str = ""
  METHODS: Dict[str, CurveMethod] = {}

  @property
  def mode(self) -> str:
    return self.CONFIG.MODE

  def run(self, config, cache=None) -> dict:
    """Runs the evaluation config describes; returns its record. `cache`, a
    feature_cache.FeatureCache, is shared by the runs of one process (the
    probe keeps its encoded images there)."""
    raise NotImplementedError

  def method(self, config) -> Optional[str]:
    """Which of METHODS this config measures (None: none of them)."""
    del config
    return None

  def kind(self, record: dict) -> str:
    """What a record measured, in words: its curve method's label, or the
    task's name."""
    if record.get("method") in self.METHODS:
      return self.METHODS[record["method"]].label
    return self.NAME

  def describe(self, record: dict) -> str:
    """One line: what was evaluated and its headline metric."""
    return (f"{self.kind(record)} on {record['dataset']} "
            f"{record['test_split']} with "
            f"{record['label_fraction']:.0%} of the labels: top-1 "
            f"{record['test_top1']:.4f}, top-5 {record['test_top5']:.4f}")


def register(task_class):
  """Class decorator: the task's instance serves its mode."""
  TASKS[task_class.CONFIG.MODE] = task_class()
  return task_class


class WallClock:
  """Seconds since creation."""

  def __init__(self):
    self.start = time.time()

  def seconds(self) -> float:
    return time.time() - self.start


def pretrained(config) -> config_lib.PretrainConfig:
  """The pretraining config of config's encoder: its model_dir's, or, for an
  evaluation without trained weights, its pretraining flagfile's."""
  if config.model_dir:
    return encoder_dir.load_config(config.model_dir)
  return encoder_dir.from_flagfile(config.pretrain_flagfile)


def labelled_data(config, pretrained_config: config_lib.PretrainConfig):
  """(dataset, data_dir, training split's source) of a classification
  evaluation, both splits checked to exist and to be labelled."""
  dataset = config.dataset or pretrained_config.dataset
  data_dir = config.data_dir or pretrained_config.data_dir
  train_source = sources.get_source(dataset, config.train_split, data_dir)
  sources.get_source(dataset, config.test_split, data_dir)
  if train_source.num_classes < 2:
    raise sources.DataError(f"{dataset} {config.train_split} has no class "
                            "labels to evaluate with")
  return dataset, data_dir, train_source


def curve_methods(tasks: List[Task]) -> Dict[str, Tuple[Task, CurveMethod]]:
  """Every curve method of these tasks, by name."""
  return {name: (task, method) for task in tasks
          for name, method in task.METHODS.items()}
