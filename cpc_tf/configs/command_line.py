"""The command line: absl flags made from the config dataclasses, one flag
per field, named like it, with its default and help text (pretrain.setting),
so that each setting is written once; the configs made from parsed flags;
flagfiles read as lists of flags.

run_pretrain.py's flags are PretrainConfig's and --train_epochs;
run_eval.py's are --mode and every mode config's fields, each mode taking
only its own (a flag of another mode is refused by name). A field's choices
are listed in its help and checked once, by the config's validate().
"""

import dataclasses
import math
import typing
from typing import List

from absl import flags
from absl import logging
import tensorflow as tf

from cpc_tf.configs import modes
from cpc_tf.configs import pretrain as config_lib
from cpc_tf.data import sources


def _kind(field: dataclasses.Field) -> type:
  """int, float, bool, str or Tuple[X, ...] (Optional[X] counts as X)."""
  kind = field.type
  if typing.get_origin(kind) is typing.Union:
    kind = next(a for a in typing.get_args(kind) if a is not type(None))
  return kind


def define_flags(*config_classes, flag_values=flags.FLAGS):
  """Defines a flag for every field of the config classes; a field that
  several classes share (the same name) gets one flag, which must have the
  same default in each."""
  defined = {}
  for config_class in config_classes:
    for field in dataclasses.fields(config_class):
      if field.name in defined:
        if defined[field.name].default != field.default:
          raise ValueError(f"{config_class.__name__}.{field.name}: another "
                           "class gives it another default")
        continue
      defined[field.name] = field
      _define(config_class, field, flag_values)


def _define(config_class, field: dataclasses.Field, flag_values):
  default = field.default
  help_text = field.metadata.get("help")
  if not help_text:
    raise ValueError(f"{config_class.__name__}.{field.name} has no help text")
  choices = field.metadata.get("choices")
  if choices is not None:
    help_text += f" One of: {', '.join(map(str, choices))}."
  kind = typing.get_origin(_kind(field)) or _kind(field)
  define = {bool: flags.DEFINE_bool, int: flags.DEFINE_integer,
            float: flags.DEFINE_float, str: flags.DEFINE_string}
  if kind is tuple:
    flags.DEFINE_list(field.name, [str(v) for v in default], help_text,
                      flag_values=flag_values)
  else:
    define[kind](field.name, default, help_text, flag_values=flag_values)


_PLURAL = {int: "integers", float: "numbers"}


def config_from_flags(config_class, flag_values=flags.FLAGS, **overrides):
  """config_class filled from the flags define_flags made (overrides win).
  Raises ConfigError for a list flag whose items are not numbers of the
  field's type."""
  values = {}
  for field in dataclasses.fields(config_class):
    value = flag_values[field.name].value
    kind = _kind(field)
    if typing.get_origin(kind) is tuple:
      item = typing.get_args(kind)[0]
      try:
        value = tuple(item(v) for v in value)
      except ValueError:
        raise config_lib.ConfigError(
            f"--{field.name} must be {_PLURAL[item]}, got {value}") from None
    values[field.name] = value
  values.update(overrides)
  return config_class(**values)


# run_pretrain.py.

def define_pretrain_flags(flag_values=flags.FLAGS):
  define_flags(config_lib.PretrainConfig, flag_values=flag_values)
  flags.DEFINE_float("train_epochs", None, "If set, overrides train_steps: "
                     "epochs over the split at batch_size.",
                     flag_values=flag_values)


def pretrain_config_from_flags(flag_values=flags.FLAGS
                               ) -> config_lib.PretrainConfig:
  if flag_values.train_epochs is None:
    return config_from_flags(config_lib.PretrainConfig, flag_values)
  examples = sources.get_source(flag_values.dataset, flag_values.split,
                                flag_values.data_dir).num_examples
  return config_from_flags(
      config_lib.PretrainConfig, flag_values, train_steps=math.ceil(
          flag_values.train_epochs * examples / flag_values.batch_size))


# run_eval.py.

def define_eval_flags(flag_values=flags.FLAGS):
  """--mode and one flag per field of the mode configs."""
  described = "; ".join(f"{mode}: {config.__doc__.split('.')[0]}"
                        for mode, config in modes.CONFIGS.items())
  flags.DEFINE_enum("mode", "linear", list(modes.CONFIGS),
                    f"{described}. Each mode accepts only its own flags.",
                    flag_values=flag_values)
  define_flags(*modes.CONFIGS.values(), flag_values=flag_values)


def eval_config_from_flags(flag_values=flags.FLAGS):
  """The config of --mode from parsed flags; ConfigError for a flag given
  (on the command line or in a flagfile) that the mode does not use."""
  mode = flag_values.mode
  own = set(modes.field_names(mode))
  given = sorted(name for name in modes.ALL_FIELDS - own
                 if flag_values[name].present)
  if given:
    raise config_lib.ConfigError(
        f"--{given[0]} does not apply to --mode={mode}, which takes "
        + ", ".join(f"--{name}" for name in sorted(own)))
  return config_from_flags(modes.CONFIGS[mode], flag_values)


def eval_config_from_args(args: List[str]):
  """The config run_eval.py would make of these arguments (--mode among
  them), parsed on flags of their own; raises flags.Error or ConfigError
  as run_eval.py would report them."""
  flag_values = flags.FlagValues()
  define_eval_flags(flag_values)
  flag_values(["run_eval.py", *args])
  return eval_config_from_flags(flag_values)


# Flagfiles.

# Every setting of either script.
ALL_SETTINGS = modes.ALL_FIELDS | {
    f.name for f in dataclasses.fields(config_lib.PretrainConfig)}


def flag_name(arg: str) -> str:
  """The flag an argument sets: --name=value, --name or --noname (a bool)."""
  name = arg.lstrip("-").split("=", 1)[0]
  if (name not in ALL_SETTINGS and name.startswith("no")
      and name[2:] in ALL_SETTINGS):
    return name[2:]
  return name


def flagfile_args(text: str) -> List[str]:
  """The flags of a flagfile's text, one per line, nested --flagfile=PATH
  lines replaced by that file's flags (paths as absl reads them)."""
  args = []
  for line in text.splitlines():
    line = line.strip()
    if not line or line.startswith("#"):
      continue
    if flag_name(line) == "flagfile":
      with tf.io.gfile.GFile(line.split("=", 1)[1]) as f:
        args.extend(flagfile_args(f.read()))
    else:
      args.append(line)
  return args


def refuse_lines(args: List[str], names, script: str, runs: str):
  """ValueError naming the first argument that sets one of `names`, which
  `script` sets itself for `runs`."""
  for arg in args:
    if flag_name(arg) in names:
      raise ValueError(f"{arg} is set by {script} for {runs}; remove the "
                       "line")


def mode_args(mode: str, flagfile_text: str) -> List[str]:
  """The flags of an eval flagfile that apply to `mode`, so that one
  flagfile can serve every mode of a curve (run_curve.py). Raises
  ValueError for a line that is not a run_eval.py evaluation flag."""
  own = set(modes.field_names(mode))
  args = []
  for arg in flagfile_args(flagfile_text):
    name = flag_name(arg)
    if not arg.startswith("--") or name not in modes.ALL_FIELDS:
      raise ValueError(f"{arg!r} is not a run_eval.py evaluation flag")
    if name in own:
      args.append(arg)
  return args


def show_warnings_only(flag_values=flags.FLAGS):
  """Libraries' INFO log lines (TFDS reading, checkpoint sharding) are
  shown only when --verbosity asks for them: absl turns them on for every
  app.run otherwise. Call at the start of main()."""
  if not flag_values["verbosity"].present:
    logging.set_verbosity(logging.WARNING)


def _row(field: dataclasses.Field, *extra: str) -> str:
  default = field.default
  if isinstance(default, tuple):
    default = ",".join(map(str, default))
  text = " ".join(field.metadata["help"].split())
  choices = field.metadata.get("choices")
  if choices is not None:
    text += f" One of: {', '.join(map(str, choices))}."
  return "| " + " | ".join([f"`--{field.name}`", f"`{default}`", *extra,
                            text.replace("|", "\\|")]) + " |"


def markdown_reference() -> str:
  """Every flag of run_pretrain.py and run_eval.py as Markdown tables."""
  lines = ["### run_pretrain.py", "", "| flag | default | help |",
           "| --- | --- | --- |"]
  lines += [_row(f) for f in dataclasses.fields(config_lib.PretrainConfig)]
  lines += ["| `--train_epochs` | `None` | If set, overrides train_steps: "
            "epochs over the split at batch_size. |", "",
            "### run_eval.py", "",
            "`--mode`: " + ", ".join(f"`{mode}`" for mode in modes.CONFIGS)
            + " (default `linear`). Each mode takes only its own flags.", "",
            "| flag | default | modes | help |", "| --- | --- | --- | --- |"]
  seen = {}
  for mode, config in modes.CONFIGS.items():
    for field in dataclasses.fields(config):
      seen.setdefault(field.name, (field, []))[1].append(mode)
  lines += [_row(field, ", ".join(used))
            for field, used in sorted(seen.values(),
                                      key=lambda item: item[0].name)]
  return "\n".join(lines)
