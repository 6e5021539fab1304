"""Every command the documentation gives runs as written: each script
accepts its flags (flagfiles included), and those of run_pretrain.py and
run_eval.py make a config that validates."""

import os
import re
import shlex

from absl import flags
import pytest

from cpc_tf.configs import command_line
from helpers import REPO

DOCUMENTS = ("README.md", "docs/RESULTS.md", "docs/design.md",
             "docs/encoders/README.md")


def commands(path):
  """The `python run_*.py ...` commands of a Markdown file: in sh blocks
  (continuation lines joined, && chains split) and in inline code."""
  with open(os.path.join(REPO, path)) as f:
    text = f.read()
  found = []
  for block in re.findall(r"```sh\n(.*?)```", text, re.S):
    for line in block.replace("\\\n", " ").splitlines():
      found += [part.strip() for part in line.split("&&")]
  found += re.findall(r"`(python run_\w+\.py [^`]*)`", text)
  return [c for c in found if re.match(r"python run_\w+\.py\b", c)]


ALL = [(path, command) for path in DOCUMENTS for command in commands(path)]


def test_the_commands_are_found():
  scripts = {command.split()[1] for _, command in ALL}
  assert scripts == {"run_pretrain.py", "run_eval.py", "run_curve.py",
                     "run_ladder.py"}
  assert len([c for p, c in ALL if p == "README.md"]) >= 12


def defined_flags(script):
  """The flags a script defines itself (run_curve.py, run_ladder.py)."""
  with open(os.path.join(REPO, script)) as f:
    return set(re.findall(r'flags\.DEFINE_\w+\(\s*"(\w+)"', f.read()))


@pytest.mark.parametrize("path,command", ALL)
def test_documented_command_is_accepted(path, command, monkeypatch):
  monkeypatch.chdir(REPO)
  script, *args = shlex.split(command)[1:]
  # absl's own (--helpfull, --verbosity) are every script's.
  args = [a for a in args if a.startswith("--") and a.lstrip("-").split(
      "=")[0] not in ("helpfull", "helpshort", "help", "verbosity")]
  for arg in args:
    if arg.startswith("--flagfile=") or arg.startswith("--eval_flagfile="):
      assert os.path.exists(arg.split("=", 1)[1]), (path, arg)
  if script in ("run_curve.py", "run_ladder.py"):
    known = defined_flags(script) | {"flagfile"}
    assert {command_line.flag_name(a) for a in args} <= known, (path, command)
    return
  flag_values = flags.FlagValues()
  if script == "run_pretrain.py":
    command_line.define_pretrain_flags(flag_values)
    flag_values([script, *args])
    config = command_line.pretrain_config_from_flags(flag_values)
  else:
    command_line.define_eval_flags(flag_values)
    flag_values([script, *args])
    config = command_line.eval_config_from_flags(flag_values)
  if "--save_encoder=docs/encoders/NAME" not in args:
    config.validate()
