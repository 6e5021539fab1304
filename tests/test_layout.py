"""The package's layout: folders by layer, each importing only the layers
before it; no two modules of one name; one registered task per mode."""

import ast
import collections
import glob
import os

from cpc_tf.configs import modes
from cpc_tf.evaluation import registry
from helpers import REPO

# Lowest first: a module may import its own layer and those before it.
LAYERS = ("data", "models", "configs", "train", "serving", "evaluation")


def modules():
  return sorted(glob.glob(os.path.join(REPO, "cpc_tf", "*", "*.py")))


def imported_layers(path):
  """The cpc_tf folders a module imports from."""
  with open(path) as f:
    tree = ast.parse(f.read())
  found = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and node.module and (
        node.module.startswith("cpc_tf.")):
      found.add(node.module.split(".")[1])
  return found


def test_lower_layers_never_import_higher_ones():
  wrong = []
  for path in modules():
    layer = os.path.basename(os.path.dirname(path))
    assert layer in LAYERS, path
    for used in imported_layers(path):
      if LAYERS.index(used) > LAYERS.index(layer):
        wrong.append(f"{os.path.relpath(path, REPO)} imports cpc_tf.{used}")
  assert not wrong, wrong


def test_configs_import_only_what_they_validate_against():
  for path in glob.glob(os.path.join(REPO, "cpc_tf", "configs", "*.py")):
    assert imported_layers(path) <= {"configs", "data", "models"}, path


def test_no_two_modules_share_a_name():
  names = collections.Counter(
      os.path.basename(path) for path in modules()
      if not path.endswith("__init__.py"))
  assert [name for name, count in names.items() if count > 1] == []


def test_one_registered_task_per_mode_with_its_curve_methods():
  for mode, config_class in modes.CONFIGS.items():
    task = registry.get(mode)
    assert task.CONFIG is config_class and task.NAME, mode
  methods = registry.curve_methods()
  assert set(methods) == {"cpc_fixed", "cpc_fine_tuned", "random_fixed",
                          "supervised", "cpc_probe", "random_probe",
                          "pixels_probe"}
  labels = [method.label for _, method in methods.values()]
  styles = [method.style for _, method in methods.values()]
  assert len(set(labels)) == len(labels) and len(set(styles)) == len(styles)
  for name, (task, method) in methods.items():
    # The flags of a method make a config its task names that method.
    config = task.CONFIG(**{
        arg.lstrip("-").split("=")[0]: (arg.split("=")[1] if "=" in arg
                                        else True)
        for arg in method.args})
    assert task.method(config) == name


def test_importing_cpc_tf_sets_tensorflow_s_environment():
  """Once, in cpc_tf/__init__.py: oneDNN's kernels on, unless the user set
  TF_ENABLE_ONEDNN_OPTS before (the tests do not)."""
  assert os.environ["TF_ENABLE_ONEDNN_OPTS"] == "1"
  scripts = glob.glob(os.path.join(REPO, "run_*.py"))
  for script in scripts:
    with open(script) as f:
      assert "TF_ENABLE_ONEDNN_OPTS" not in f.read(), script
