"""run_eval.py's flags: --mode and one flag per field of the mode configs;
each mode's config is made from its own flags, and a flag given that the
mode does not use is refused by name."""

from absl import flags

from cpc_tf import config as config_lib
from cpc_tf import config_flags
from cpc_tf.tasks import configs


def define_flags(flag_values=flags.FLAGS):
  flags.DEFINE_enum(
      "mode", "linear", list(configs.CONFIGS),
      "linear: the A.3 linear probe; probe: the cached linear probe (A.3's "
      "head fitted to convergence on features encoded once, minutes); "
      "efficient: a ResNet head on the latents (optionally fine-tuning the "
      "encoder); supervised: the A.4 pixel baseline; detection: RetinaNet on "
      "the encoder, mAP on a VOC-style folder; export: write a SavedModel "
      "and/or an encoder model_dir. Each mode accepts only its own flags.",
      flag_values=flag_values)
  config_flags.define_flags(*configs.CONFIGS.values(), flag_values=flag_values)


def config_from_flags(flag_values=flags.FLAGS):
  """The config of --mode from parsed flags; ConfigError for a flag given
  (on the command line or in a flagfile) that the mode does not use."""
  mode = flag_values.mode
  own = set(configs.field_names(mode))
  others = configs.ALL_FIELDS - own
  given = sorted(name for name in others if flag_values[name].present)
  if given:
    raise config_lib.ConfigError(
        f"--{given[0]} does not apply to --mode={mode}, which takes "
        + ", ".join(f"--{name}" for name in sorted(own)))
  return config_flags.config_from_flags(configs.CONFIGS[mode], flag_values)


def config_from_args(args):
  """The config run_eval.py would make of these command-line arguments
  (--mode among them), parsed on flags of their own; raises flags.Error or
  ConfigError as run_eval.py would report them."""
  flag_values = flags.FlagValues()
  define_flags(flag_values)
  flag_values(["run_eval.py", *args])
  return config_from_flags(flag_values)
