"""The processor a benchmark ran on, read from /proc/cpuinfo."""


def cpu_info() -> dict:
  """The first processor's /proc/cpuinfo fields."""
  with open("/proc/cpuinfo") as f:
    lines = f.read().split("\n\n")[0].splitlines()
  return {k.strip(): v.strip() for k, _, v in (l.partition(":") for l in lines)}
