"""Flags generated from PretrainConfig: one per field, with its default, help
text and choices, parsed back into the same config."""

import dataclasses

from absl import flags
import pytest

from cpc_tf import config as config_lib
from cpc_tf import config_flags


@pytest.fixture
def flag_values():
  values = flags.FlagValues()
  config_flags.define_flags(config_lib.PretrainConfig, flag_values=values)
  return values


def test_one_flag_per_field_with_its_default_and_help(flag_values):
  defaults = config_lib.PretrainConfig()
  flag_values(["prog"])
  assert config_flags.config_from_flags(config_lib.PretrainConfig,
                                        flag_values) == defaults
  for field in dataclasses.fields(config_lib.PretrainConfig):
    # absl puts an enum's choices before its help text.
    assert flag_values[field.name].help.endswith(field.metadata["help"])
  assert flag_values["directions"].parser.enum_values == ["1", "2", "4"]


def test_parsed_values_become_typed_fields(flag_values):
  flag_values(["prog", "--encoder_blocks=1,2,3", "--directions=4",
               "--noflip", "--color_drop=0.25", "--data_dir=gs://b/tfds",
               "--precision=bfloat16"])
  config = config_flags.config_from_flags(config_lib.PretrainConfig,
                                          flag_values, train_steps=7)
  assert config.encoder_blocks == (1, 2, 3)
  assert config.directions == 4 and config.flip is False
  assert config.color_drop == 0.25 and config.data_dir == "gs://b/tfds"
  assert config.precision == "bfloat16" and config.train_steps == 7


def test_bad_values_are_named(flag_values):
  flag_values(["prog", "--encoder_blocks=1,x"])
  with pytest.raises(config_lib.ConfigError, match="--encoder_blocks"):
    config_flags.config_from_flags(config_lib.PretrainConfig, flag_values)
  with pytest.raises(flags.IllegalFlagValueError):
    flag_values(["prog", "--directions=3"])


def test_a_field_without_help_is_refused():
  @dataclasses.dataclass(frozen=True)
  class Undocumented:
    size: int = 3

  with pytest.raises(ValueError, match="Undocumented.size has no help"):
    config_flags.define_flags(Undocumented, flag_values=flags.FlagValues())
