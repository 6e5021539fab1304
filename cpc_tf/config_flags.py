"""absl flags made from config dataclasses: one flag per field, named like
it, with its default, its help text and its choices (config.setting), so
that each setting is written once."""

import dataclasses
import typing

from absl import flags

from cpc_tf import config as config_lib


def _kind(field: dataclasses.Field) -> type:
  """int, float, bool, str or tuple (Optional[X] counts as X)."""
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
  kind = typing.get_origin(_kind(field)) or _kind(field)
  if choices is not None:
    flags.DEFINE_enum(field.name, None if default is None else str(default),
                      [str(c) for c in choices], help_text,
                      flag_values=flag_values)
  elif kind is bool:
    flags.DEFINE_bool(field.name, default, help_text, flag_values=flag_values)
  elif kind is int:
    flags.DEFINE_integer(field.name, default, help_text,
                         flag_values=flag_values)
  elif kind is float:
    flags.DEFINE_float(field.name, default, help_text, flag_values=flag_values)
  elif kind is tuple:
    flags.DEFINE_list(field.name, [str(v) for v in default], help_text,
                      flag_values=flag_values)
  else:
    flags.DEFINE_string(field.name, default, help_text,
                        flag_values=flag_values)


_PLURAL = {int: "integers", float: "numbers"}


def config_from_flags(config_class, flag_values=flags.FLAGS, **overrides):
  """config_class filled from the flags define_flags made (overrides win).
  Raises ConfigError for a list flag whose items are not numbers of the
  field's type."""
  values = {}
  for field in dataclasses.fields(config_class):
    value = flag_values[field.name].value
    kind = _kind(field)
    try:
      if typing.get_origin(kind) is tuple:
        item = typing.get_args(kind)[0]
        value = tuple(item(v) for v in value)
      elif field.metadata.get("choices") is not None and kind is int:
        value = int(value)
    except ValueError:
      raise config_lib.ConfigError(
          f"--{field.name} must be {_PLURAL[item]}, got {value}") from None
    values[field.name] = value
  values.update(overrides)
  return config_class(**values)
