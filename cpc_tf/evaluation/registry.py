"""Every evaluation task, found by its run_eval.py mode. Adding a mode is a
config class in configs/modes.py, a task module and one import here."""

from typing import Dict, Tuple

from cpc_tf.configs import modes
from cpc_tf.evaluation import detection  # pylint: disable=unused-import
from cpc_tf.evaluation import efficient  # pylint: disable=unused-import
from cpc_tf.evaluation import export  # pylint: disable=unused-import
from cpc_tf.evaluation import linear  # pylint: disable=unused-import
from cpc_tf.evaluation import probe  # pylint: disable=unused-import
from cpc_tf.evaluation import supervised  # pylint: disable=unused-import
from cpc_tf.evaluation import task

assert set(task.TASKS) == set(modes.CONFIGS), "a mode without a task"


def get(mode: str) -> task.Task:
  return task.TASKS[mode]


def curve_methods() -> Dict[str, Tuple[task.Task, task.CurveMethod]]:
  """Every curve method, by name, in the order of the curve's legend."""
  return task.curve_methods([get(mode) for mode in
                             ("efficient", "supervised", "probe", "linear")])


def run(config, cache=None) -> dict:
  """Runs the evaluation a mode config describes (as run_eval.py does);
  returns its record."""
  return get(config.MODE).run(config, cache)
