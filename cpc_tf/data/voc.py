"""PASCAL-VOC-style detection data: a folder with one XML file per image, the
VOCdevkit layout (Annotations/, JPEGImages/, ImageSets/Main/<split>.txt), or
a prepared TFDS detection dataset named "tfds:NAME" (e.g. tfds:voc/2007).

Real annotation files are messy; loading repairs what it can and counts it:
a 0x0 (or wrong) size is replaced by the decoded image's, boxes are clipped to
the image, empty or degenerate boxes are dropped, and XML or image files that
do not parse or decode are skipped. Boxes are [ymin, xmin, ymax, xmax] in
pixels, continuous coordinates (VOC's 1-based xmin becomes xmin - 1).
"""

import dataclasses
import os
from typing import List, Optional, Tuple
import xml.etree.ElementTree as ElementTree

from absl import logging
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from cpc_tf.data.sources import DataError, TFDSSource, decode_rgb

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")
TFDS_PREFIX = "tfds:"


@dataclasses.dataclass
class Annotation:
  image_path: str            # a file, or the image's name in a TFDS dataset
  height: int
  width: int
  boxes: np.ndarray          # [K, 4] float32 (ymin, xmin, ymax, xmax)
  names: List[str]           # class name per box
  difficult: np.ndarray      # [K] bool
  encoded: Optional[bytes] = None  # the image file's bytes, when not on disk


@dataclasses.dataclass
class LoadReport:
  images: int = 0
  skipped_files: List[str] = dataclasses.field(default_factory=list)
  sizes_replaced: int = 0
  boxes_clipped: int = 0
  boxes_dropped: int = 0

  def log(self, path: str):
    if self.skipped_files:
      logging.warning("Skipped %d unreadable annotation/image files in %s, "
                      "e.g. %s", len(self.skipped_files), path,
                      self.skipped_files[:3])
    logging.info("%s: %d images; %d sizes taken from the image, %d boxes "
                 "clipped, %d empty or degenerate boxes dropped", path,
                 self.images, self.sizes_replaced, self.boxes_clipped,
                 self.boxes_dropped)


def parse_xml(text: str) -> Tuple[str, Tuple[int, int], list]:
  """(filename, (height, width) as written, [(name, difficult, xmin, ymin,
  xmax, ymax)]) of one VOC annotation; raises ValueError if malformed."""
  try:
    root = ElementTree.fromstring(text)
  except ElementTree.ParseError as e:
    raise ValueError(f"not well-formed XML: {e}") from e
  if root.tag != "annotation":
    raise ValueError(f"root element is <{root.tag}>, not <annotation>")

  def number(node, tag, default=None):
    value = node.findtext(tag)
    if value is None or not value.strip():
      if default is None:
        raise ValueError(f"<{tag}> is missing")
      return default
    return float(value)

  size = root.find("size")
  height_width = ((int(number(size, "height", 0)),
                   int(number(size, "width", 0)))
                  if size is not None else (0, 0))
  objects = []
  for obj in root.iter("object"):
    box = obj.find("bndbox")
    if box is None or not (obj.findtext("name") or "").strip():
      raise ValueError("an <object> without <name> or <bndbox>")
    objects.append((obj.findtext("name").strip(),
                    bool(int(number(obj, "difficult", 0))),
                    *(number(box, tag)
                      for tag in ("xmin", "ymin", "xmax", "ymax"))))
  filename = (root.findtext("filename") or "").strip()
  return filename, height_width, objects


def _annotation_files(path: str, split: str) -> List[Tuple[str, str]]:
  """(xml path, image folder) pairs of a VOCdevkit split or a plain folder
  (`path/split` if it exists, else `path`)."""
  annotations = os.path.join(path, "Annotations")
  if tf.io.gfile.isdir(annotations):
    images = os.path.join(path, "JPEGImages")
    listing = os.path.join(path, "ImageSets", "Main", f"{split}.txt")
    if tf.io.gfile.exists(listing):
      with tf.io.gfile.GFile(listing) as f:
        ids = [line.split()[0] for line in f if line.strip()]
      return [(os.path.join(annotations, f"{i}.xml"), images) for i in ids]
    return [(p, images) for p in
            sorted(tf.io.gfile.glob(os.path.join(annotations, "*.xml")))]
  folder = os.path.join(path, split)
  folder = folder if tf.io.gfile.isdir(folder) else path
  return [(p, folder) for p in
          sorted(tf.io.gfile.glob(os.path.join(folder, "*.xml")))]


def _image_path(xml_path: str, folder: str, filename: str) -> Optional[str]:
  """The image an annotation describes: its <filename> (the basename only:
  paths in the XML are often someone else's disk), else the XML's stem."""
  basename = filename.replace("\\", "/").split("/")[-1]
  stem = os.path.splitext(os.path.basename(xml_path))[0]
  candidates = (([basename] if basename else [])
                + [stem + e for e in IMAGE_EXTENSIONS])
  for name in candidates:
    if tf.io.gfile.exists(os.path.join(folder, name)):
      return os.path.join(folder, name)
  return None


def _repair_boxes(objects, height, width, report):
  """Clip to the image; drop empty or degenerate boxes."""
  boxes, names, difficult = [], [], []
  for name, hard, xmin, ymin, xmax, ymax in objects:
    box = np.array([ymin - 1, xmin - 1, ymax, xmax], np.float32)
    clipped = np.clip(box, 0, [height, width, height, width])
    report.boxes_clipped += int(np.any(clipped != box))
    if clipped[2] - clipped[0] < 1 or clipped[3] - clipped[1] < 1:
      report.boxes_dropped += 1
      continue
    boxes.append(clipped)
    names.append(name)
    difficult.append(hard)
  return (np.array(boxes, np.float32).reshape(-1, 4), names,
          np.array(difficult, bool))


def load(path: str, split: str = "train", data_dir: Optional[str] = None
         ) -> Tuple[List[Annotation], LoadReport]:
  """Annotations of `split` under `path` (or of the TFDS dataset
  "tfds:NAME" under data_dir), repaired, and what was repaired."""
  if path.startswith(TFDS_PREFIX):
    return load_tfds(path[len(TFDS_PREFIX):], split, data_dir)
  if not tf.io.gfile.isdir(path):
    raise DataError(f"detection data folder {path!r} does not exist")
  pairs = _annotation_files(path, split)
  if not pairs:
    raise DataError(f"no VOC XML annotations under {path!r} (split {split!r})")
  annotations, report = [], LoadReport()
  for xml_path, folder in pairs:
    try:
      with tf.io.gfile.GFile(xml_path, "rb") as f:
        filename, written_size, objects = parse_xml(f.read())
      image_path = _image_path(xml_path, folder, filename)
      if image_path is None:
        raise ValueError("its image is missing")
      shape = decode_rgb(tf.io.read_file(image_path)).shape
    except (ValueError, tf.errors.OpError) as e:
      logging.debug("skipping %s: %s", xml_path, e)
      report.skipped_files.append(xml_path)
      continue
    height, width = int(shape[0]), int(shape[1])
    report.sizes_replaced += int(written_size != (height, width))
    boxes, names, difficult = _repair_boxes(objects, height, width, report)
    annotations.append(Annotation(image_path, height, width, boxes, names,
                                  difficult))
  report.images = len(annotations)
  report.log(path)
  if not annotations:
    raise DataError(f"none of the {len(pairs)} annotations under {path!r} "
                     "could be read")
  return annotations, report


def class_names(annotations: List[Annotation]) -> List[str]:
  """Sorted names of the classes that occur: class i is names[i]."""
  return sorted({name for a in annotations for name in a.names})


def load_tfds(name: str, split: str, data_dir: Optional[str] = None
              ) -> Tuple[List[Annotation], LoadReport]:
  """Annotations of a prepared TFDS detection dataset with VOC's features
  (image, objects/bbox normalised yxyx, objects/label, objects/is_difficult),
  repaired like the XML files; the images stay encoded in memory."""
  builder = TFDSSource(name, split, data_dir).builder
  features = builder.info.features
  if "objects" not in features or "bbox" not in features["objects"]:
    raise DataError(f"TFDS dataset {name!r} has no objects/bbox feature: not "
                    "a detection dataset")
  label_names = features["objects"]["label"].names
  dataset = builder.as_dataset(split=split, shuffle_files=False,
                               decoders={"image": tfds.decode.SkipDecoding()})
  annotations, report = [], LoadReport()
  for example in dataset.as_numpy_iterator():
    height, width = (int(n) for n in decode_rgb(example["image"]).shape[:2])
    objects = example["objects"]
    hard = objects.get("is_difficult", np.zeros(len(objects["label"]), bool))
    # Back to VOC's pixel corners, so the repair treats them like XML boxes.
    corners = objects["bbox"] * [height, width, height, width]
    boxes, names, difficult = _repair_boxes(
        [(label_names[label], is_hard, x0, y0, x1, y1) for label, is_hard,
         (y0, x0, y1, x1) in zip(objects["label"], hard, corners)],
        height, width, report)
    filename = example.get("image/filename", b"").decode()
    annotations.append(Annotation(filename, height, width, boxes, names,
                                  difficult, encoded=example["image"]))
  report.images = len(annotations)
  report.log(f"{TFDS_PREFIX}{name} {split}")
  if not annotations:
    raise DataError(f"split {split!r} of TFDS dataset {name!r} is empty")
  return annotations, report
