"""VOC XML loading: the fruit set as published, and hand-made bad files."""

import os

import numpy as np
from PIL import Image
import pytest

from cpc_tf.evaluation import retinanet
from cpc_tf.data import voc
from helpers import FRUIT
from helpers import voc_xml as xml


def write(folder, stem, image, annotation, ext="png"):
  image.save(os.path.join(folder, f"{stem}.{ext}"))
  with open(os.path.join(folder, f"{stem}.xml"), "w") as f:
    f.write(annotation)


def test_fruit_set_loads_with_sizes_from_the_images():
  train, report = voc.load(FRUIT, "train")
  test, test_report = voc.load(FRUIT, "test")
  assert (len(train), len(test)) == (240, 60)
  assert not report.skipped_files and not test_report.skipped_files
  # 37 XML files say 0x0: their size comes from the image.
  assert report.sizes_replaced + test_report.sizes_replaced >= 37
  assert voc.class_names(train) == ["apple", "banana", "orange"]
  for a in train + test:
    assert a.boxes.shape == (len(a.names), 4)
    assert np.all(a.boxes[:, 2:] <= [a.height, a.width])
    assert np.all(a.boxes[:, :2] >= 0)
    assert np.all(a.boxes[:, 2:] > a.boxes[:, :2])
  total = sum(len(a.names) for a in train + test)
  assert total + report.boxes_dropped + test_report.boxes_dropped == 582


def test_repairs_bad_annotations_and_skips_unreadable_files(tmp_path):
  folder = str(tmp_path)
  rgba = Image.new("RGBA", (40, 30), (255, 0, 0, 128))
  write(folder, "zero_size", rgba, xml("zero_size.png", (0, 0), [
      ("cat", 0, 1, 1, 20, 10),          # fine
      ("cat", 0, 30, 5, 60, 50),         # beyond the right and bottom edges
      ("dog", 0, 10, 10, 9, 20),         # xmax < xmin: dropped
      ("dog", 1, 50, 40, 70, 45)]))      # wholly outside: dropped
  palette = Image.new("P", (16, 16))
  write(folder, "windows_path", palette, xml(
      "C:\\Users\\someone\\images\\windows_path.png", (16, 16),
      [("dog", 1, 2, 3, 8, 9)]))
  with open(os.path.join(folder, "malformed.xml"), "w") as f:
    f.write("<annotation><object><name>cat</name></annotation")
  Image.new("RGB", (8, 8)).save(os.path.join(folder, "malformed.png"))
  with open(os.path.join(folder, "no_image.xml"), "w") as f:
    f.write(xml("missing.jpg", (8, 8), [("cat", 0, 1, 1, 4, 4)]))

  annotations, report = voc.load(folder, "train")
  assert [os.path.basename(a.image_path) for a in annotations] == [
      "windows_path.png", "zero_size.png"]
  assert sorted(os.path.basename(p) for p in report.skipped_files) == [
      "malformed.xml", "no_image.xml"]
  windows, zero = annotations
  assert (zero.height, zero.width) == (30, 40) and report.sizes_replaced == 1
  np.testing.assert_array_equal(zero.boxes, [[0, 0, 10, 20], [4, 29, 30, 40]])
  assert zero.names == ["cat", "cat"]
  assert report.boxes_clipped == 2 and report.boxes_dropped == 2
  assert windows.names == ["dog"] and windows.difficult.tolist() == [True]


def test_vocdevkit_layout_reads_the_split_list(tmp_path):
  for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
    os.makedirs(tmp_path / sub)
  for stem in ("000001", "000002"):
    Image.new("RGB", (20, 20)).save(tmp_path / "JPEGImages" / f"{stem}.jpg")
    (tmp_path / "Annotations" / f"{stem}.xml").write_text(
        xml(f"{stem}.jpg", (20, 20), [("person", 0, 1, 1, 10, 10)]))
  (tmp_path / "ImageSets/Main/trainval.txt").write_text("000002\n")
  annotations, _ = voc.load(str(tmp_path), "trainval")
  assert [os.path.basename(a.image_path) for a in annotations] == ["000002.jpg"]


def test_tfds_voc2007_gives_what_its_xml_files_give(voc2007):
  """TFDS voc/2007 loads as the same annotations and images as the devkit's
  own XML and JPEG files."""
  devkit, data_dir = voc2007
  for split, xml_split in (("train+validation", "trainval"), ("test", "test")):
    from_tfds, report = voc.load("tfds:voc/2007", split, data_dir)
    from_files, _ = voc.load(devkit, xml_split)
    key = lambda a: os.path.basename(a.image_path)
    from_tfds, from_files = (sorted(from_tfds, key=key),
                             sorted(from_files, key=key))
    assert [key(a) for a in from_tfds] == [key(a) for a in from_files]
    assert report.images == len(from_files) and not report.skipped_files
    for a, b in zip(from_tfds, from_files):
      assert (a.height, a.width, a.names) == (b.height, b.width, b.names)
      np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-4)
      np.testing.assert_array_equal(a.difficult, b.difficult)
      assert a.encoded is not None and b.encoded is None
    names = voc.class_names(from_files)
    images = [next(iter(retinanet.detection_dataset(
        annotations, names, 64, len(annotations), train=False)))
              for annotations in (from_tfds, from_files)]
    np.testing.assert_array_equal(images[0][0], images[1][0])
    np.testing.assert_allclose(images[0][1]["boxes"], images[1][1]["boxes"],
                               atol=1e-3)


def test_clear_errors(tmp_path):
  with pytest.raises(voc.DataError, match="not prepared"):
    voc.load("tfds:voc/2007", "train", str(tmp_path))
  with pytest.raises(voc.DataError, match="does not exist"):
    voc.load("/nonexistent/voc", "train")
  with pytest.raises(ValueError, match="not well-formed"):
    voc.parse_xml("<annotation>")
  with pytest.raises(ValueError, match="bndbox"):
    voc.parse_xml("<annotation><object><name>x</name></object></annotation>")
