"""Flags generated from PretrainConfig: one per field, with its default, help
text and choices, parsed back into the same config."""

import dataclasses

from absl import flags
import pytest

from cpc_tf.configs import pretrain as config_lib
from cpc_tf.configs import command_line


@pytest.fixture
def flag_values():
  values = flags.FlagValues()
  command_line.define_flags(config_lib.PretrainConfig, flag_values=values)
  return values


def test_one_flag_per_field_with_its_default_and_help(flag_values):
  defaults = config_lib.PretrainConfig()
  flag_values(["prog"])
  assert command_line.config_from_flags(config_lib.PretrainConfig,
                                        flag_values) == defaults
  for field in dataclasses.fields(config_lib.PretrainConfig):
    assert flag_values[field.name].help.startswith(field.metadata["help"])
  # A field's choices are listed in its help (and checked by validate()).
  assert flag_values["directions"].help.endswith(" One of: 1, 2, 4.")


def test_parsed_values_become_typed_fields(flag_values):
  flag_values(["prog", "--encoder_blocks=1,2,3", "--directions=4",
               "--noflip", "--color_drop=0.25", "--data_dir=gs://b/tfds",
               "--precision=bfloat16"])
  config = command_line.config_from_flags(config_lib.PretrainConfig,
                                          flag_values, train_steps=7)
  assert config.encoder_blocks == (1, 2, 3)
  assert config.directions == 4 and config.flip is False
  assert config.color_drop == 0.25 and config.data_dir == "gs://b/tfds"
  assert config.precision == "bfloat16" and config.train_steps == 7


def test_bad_values_are_named(flag_values):
  flag_values(["prog", "--encoder_blocks=1,x"])
  with pytest.raises(config_lib.ConfigError, match="--encoder_blocks"):
    command_line.config_from_flags(config_lib.PretrainConfig, flag_values)
  flag_values.unparse_flags()
  flag_values(["prog", "--directions=3", "--norm=lyer", "--patch_size=40"])
  config = command_line.config_from_flags(config_lib.PretrainConfig,
                                          flag_values)
  # Every choice that cannot work is named at once.
  with pytest.raises(config_lib.ConfigError,
                     match=r"--norm must be one of \['layer', 'batch', "
                     r"'none'\], got 'lyer'; --directions must be one of "
                     r"\[1, 2, 4\], got 3$"):
    config.validate()
  flag_values.unparse_flags()
  flag_values(["prog", "--patch_size=40", "--batch_size=0",
               "--warmup_steps=5000"])
  with pytest.raises(config_lib.ConfigError) as error:
    command_line.config_from_flags(config_lib.PretrainConfig,
                                   flag_values).validate()
  assert [p.split()[0] for p in str(error.value).split("; ")] == [
      "patch_size", "batch_size", "warmup_steps"]


def test_a_field_without_help_is_refused():
  @dataclasses.dataclass(frozen=True)
  class Undocumented:
    size: int = 3

  with pytest.raises(ValueError, match="Undocumented.size has no help"):
    command_line.define_flags(Undocumented, flag_values=flags.FlagValues())
