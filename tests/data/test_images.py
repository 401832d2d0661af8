"""data/images.py: zip/folder image sources, the decode cache, resizing, errors, the
procedural voronoi-count set, tfds sources and grain batches."""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile

import numpy as np
import pytest

from data import images
from data.errors import DataError
from tests.data import corpora

CLASSES = ("zebra", "ant", "moth")  # not sorted: loading sorts class names


def random_set(n=12, shape=(6, 9, 3), seed=0):
    rng = np.random.default_rng(seed)
    imgs = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
    return imgs, rng.permutation(np.arange(n) % len(CLASSES))


def expected_order(imgs, labels):
    """What loading returns: class names sorted, examples by class then file number."""
    names = tuple(sorted(CLASSES))
    new = np.asarray([names.index(CLASSES[c]) for c in labels])
    order = np.argsort(new, kind="stable")  # files are numbered in written order per class
    return imgs[order], new[order], names


def smooth_set(n=10, size=16):
    """Smooth gradient images, which JPEG keeps close."""
    y, x = np.mgrid[0:size, 0:size] / size
    imgs = np.stack(
        [np.stack([y * 120 + 10 * i, x * 180, (x + y) * 100 + 10], -1) for i in range(n)]
    )
    return imgs.astype(np.uint8), np.arange(n) % len(CLASSES)


def test_png_folder_round_trip_is_exact_and_a_zip_loads_the_same(tmp_path):
    imgs, labels = random_set()
    test_imgs, test_labels = random_set(n=6, seed=1)
    root = tmp_path / "folder"
    images.write_image_folder(root, imgs, labels, CLASSES, "train", fmt="png")
    images.write_image_folder(root, test_imgs, test_labels, CLASSES, "test", fmt="png")
    zpath = tmp_path / "set.zip"
    images.write_image_zip(zpath, imgs, labels, CLASSES, "train", fmt="png")
    images.write_image_zip(zpath, test_imgs, test_labels, CLASSES, "test", fmt="png")
    assert "train/zebra/0000.png" in zipfile.ZipFile(zpath).namelist()
    cache = str(tmp_path / "cache")
    for split, (x, y) in {"train": (imgs, labels), "test": (test_imgs, test_labels)}.items():
        want_x, want_y, names = expected_order(x, y)
        got = images.load_split(str(root), split, cache_dir=cache)
        assert got.class_names == names == ("ant", "moth", "zebra") and got.num_classes == 3
        assert got.images.dtype == np.uint8 and got.labels.dtype == np.int32
        assert got.image_shape == (6, 9, 3) and len(got) == len(x)
        np.testing.assert_array_equal(got.images, want_x)
        np.testing.assert_array_equal(got.labels, want_y)
        from_zip = images.load_split(str(zpath), split, cache_dir=cache)
        np.testing.assert_array_equal(from_zip.images, got.images)
        np.testing.assert_array_equal(from_zip.labels, got.labels)
        item = got[1]
        assert item["label"] == want_y[1] and np.array_equal(item["image"], want_x[1])
    assert images.open_source(str(zpath), "test", cache_dir=cache).image_shape == (6, 9, 3)


def test_grayscale_stays_one_channel_and_mixed_modes_become_rgb(tmp_path):
    gray, labels = random_set(n=6, shape=(5, 7, 1))
    images.write_image_folder(tmp_path / "g", gray, labels, CLASSES, "train", fmt="png")
    got = images.load_split(str(tmp_path / "g"), "train", cache_dir=str(tmp_path / "c"))
    want_x, _, _ = expected_order(gray, labels)
    assert got.image_shape == (5, 7, 1)
    np.testing.assert_array_equal(got.images, want_x)
    rgb, _ = random_set(n=3, shape=(5, 7, 3))
    images.write_image_folder(tmp_path / "m", gray[:3], [0, 0, 0], CLASSES, "train", fmt="png")
    images.write_image_folder(tmp_path / "m", rgb, [1, 1, 1], CLASSES, "train", fmt="png")
    mixed = images.load_split(str(tmp_path / "m"), "train", cache_dir=str(tmp_path / "c"))
    assert mixed.image_shape == (5, 7, 3)
    # ant (label 1 in CLASSES) sorts first, zebra (label 0) last: gray copied to 3 channels
    np.testing.assert_array_equal(mixed.images[:3], rgb)
    np.testing.assert_array_equal(mixed.images[3:], np.repeat(gray[:3], 3, axis=-1))


def test_jpeg_shapes_and_labels_exact_and_pixels_close(tmp_path):
    imgs, labels = smooth_set()
    zpath = tmp_path / "j.zip"
    images.write_image_zip(zpath, imgs, labels, CLASSES, "train", fmt="jpg")
    got = images.load_split(str(zpath), "train", cache_dir=str(tmp_path / "c"))
    want_x, want_y, _ = expected_order(imgs, labels)
    assert got.images.shape == imgs.shape
    np.testing.assert_array_equal(got.labels, want_y)
    diff = np.abs(got.images.astype(int) - want_x.astype(int))
    assert diff.mean() < 3.0 and diff.max() < 40


def test_the_cache_is_read_back_without_decoding_and_a_changed_member_list_decodes_again(
    tmp_path, monkeypatch
):
    imgs, labels = random_set(n=9)
    root, cache = tmp_path / "f", tmp_path / "cache"
    images.write_image_folder(root, imgs, labels, CLASSES, "train", fmt="png")
    decoded = []
    real_decode = images._decode
    monkeypatch.setattr(images, "_decode", lambda *a: decoded.append(1) or real_decode(*a))
    first = images.load_split(str(root), "train", cache_dir=str(cache))
    assert len(decoded) == 9
    files = os.listdir(cache)
    assert len(files) == 1 and files[0].endswith(".npz")  # no temp file left behind
    second = images.load_split(str(root), "train", cache_dir=str(cache))
    assert len(decoded) == 9  # nothing decoded: read from the cache
    np.testing.assert_array_equal(second.images, first.images)
    np.testing.assert_array_equal(second.labels, first.labels)
    assert second.class_names == first.class_names
    shutil.copy(root / "train/zebra/0000.png", root / "train/zebra/0100.png")  # one more
    third = images.load_split(str(root), "train", cache_dir=str(cache))
    assert len(decoded) == 9 + 10 and len(third) == 10 and len(os.listdir(cache)) == 2
    # A different image_size or limit is another cache entry, decoded again.
    assert len(images.load_split(str(root), "train", cache_dir=str(cache), limit=4)) == 4
    assert len(decoded) == 9 + 10 + 4


def test_a_zip_member_with_new_contents_invalidates_the_cache(tmp_path):
    imgs, labels = random_set(n=4)
    zpath, cache = tmp_path / "z.zip", str(tmp_path / "cache")
    images.write_image_zip(zpath, imgs, labels, CLASSES, "train", fmt="png")
    first = images.load_split(str(zpath), "train", cache_dir=cache)
    os.remove(zpath)
    images.write_image_zip(zpath, 255 - imgs, labels, CLASSES, "train", fmt="png")
    second = images.load_split(str(zpath), "train", cache_dir=cache)
    np.testing.assert_array_equal(second.images, 255 - first.images)


def test_image_size_resizes_the_shorter_side_and_center_crops(tmp_path):
    wide = np.zeros((20, 40, 3), np.uint8)
    wide[:, :8] = wide[:, 32:] = [255, 0, 0]  # red edges, cropped away
    wide[:, 8:32] = [0, 0, 255]  # blue centre (columns 10..30 survive the crop)
    tall = np.full((30, 18, 3), 100, np.uint8)
    root = tmp_path / "mixed"
    three = [wide, tall, np.full((16, 16, 3), 7, np.uint8)]
    images.write_image_folder(root, three, [0, 0, 0], CLASSES, "train", fmt="png")
    got = images.load_split(str(root), "train", image_size=12, cache_dir=str(tmp_path / "c"))
    assert got.images.shape == (3, 12, 12, 3)
    np.testing.assert_array_equal(got.images[0], np.broadcast_to([0, 0, 255], (12, 12, 3)))
    assert (got.images[1] == 100).all() and (got.images[2] == 7).all()
    with pytest.raises(DataError, match=r"train/zebra/0001\.png is 18x30 .*image_size"):
        images.load_split(str(root), "train", cache_dir=str(tmp_path / "c"))


@pytest.fixture
def small_zip(tmp_path):
    imgs, labels = random_set(n=3)
    path = tmp_path / "s.zip"
    images.write_image_zip(path, imgs, labels, CLASSES, "train", fmt="png")
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("val/ant/", b"")  # a split with a class folder but no images
        z.writestr("test/ant/0000.jpg", b"this is not a jpeg")
    return str(path)


@pytest.mark.parametrize(
    "source, split, message",
    [
        ("{tmp}/missing.zip", "train", r"missing\.zip' does not exist; pass a \.zip"),
        ("{zip}", "validation", r"no split 'validation' \(splits found: test, train, val\)"),
        ("{zip}", "val", r"split 'val' has no \.jpg/\.jpeg/\.png images"),
        ("{zip}", "test", r"test/ant/0000\.jpg is not a decodable image .*remove or replace"),
        ("procedural:mandelbrot", "train", r"procedural:mandelbrot is not a known dataset"),
        ("procedural:voronoi-count:many", "train", r"'many' is not a positive example count"),
        ("procedural:voronoi-count", "val", r"no split 'val' \(splits: train, test\)"),
        ("s3://bucket/cifar.zip", "train", r"is not a supported form; pass a \.zip"),
        ("{tmp}/notes.txt", "train", r"notes\.txt' is a file but not a zip"),
    ],
)
def test_bad_input_gets_a_data_error_naming_the_problem(
    tmp_path, small_zip, source, split, message
):
    (tmp_path / "notes.txt").write_text("hello")
    source = source.format(tmp=tmp_path, zip=small_zip)
    with pytest.raises(DataError, match=message):
        images.load_split(source, split, cache_dir=str(tmp_path / "c"))


def test_tfds_source_not_prepared_is_a_data_error_and_leaves_no_temporary_folder(
    tmp_path, monkeypatch
):
    temp = tmp_path / "temp"  # tfds's mkdtemp for a dataset it does not find would go here
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    with pytest.raises(DataError, match=r"'cifar10' is not prepared as ArrayRecord .*tfds build"):
        images.open_source("tfds:cifar10", "train", tfds_dir=str(tmp_path / "tfds"))
    assert os.listdir(temp) == []
    (tmp_path / "tfds" / "cifar10").mkdir(parents=True)  # its folder, but no dataset in it
    with pytest.raises(DataError, match=r"not prepared .*NotImplementedError.*tfds build cifar10"):
        images.open_source("tfds:cifar10", "train", tfds_dir=str(tmp_path / "tfds"))


def test_a_prepared_tfds_dataset_is_read_item_by_item_and_batched(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")

    class ShammieTinyImages(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        VERSION = tfds.core.Version("1.0.0")
        # A one-part module name: tfds then skips its package-resource lookup of the
        # builder's code, which needs the (here uninstalled) importlib_resources.
        __module__ = "shammie_test_builder"

        def _info(self):
            image = tfds.features.Tensor(shape=(None, None, 3), dtype=np.uint8, encoding="zlib")
            label = tfds.features.ClassLabel(names=["a", "b", "c"])
            return tfds.core.DatasetInfo(
                builder=self, features=tfds.features.FeaturesDict({"image": image, "label": label})
            )

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(7)}

        def _generate_examples(self, n):
            for i in range(n):  # image i is flat with value 10 * i, label i % 3
                yield i, {"image": np.full((6 + i, 9, 3), 10 * i, np.uint8), "label": i % 3}

    with corpora.temporary_files_in(str(tmp_path / "tmp")):
        builder = ShammieTinyImages(data_dir=str(tmp_path), file_format="array_record")
        builder.download_and_prepare()
    src = images.open_source(
        "tfds:shammie_tiny_images:1.0.0", "train", image_size=4, tfds_dir=str(tmp_path)
    )
    assert len(src) == 7 and src.class_names == ("a", "b", "c")
    items = [src[i] for i in range(7)]
    assert all(x["image"].shape == (4, 4, 3) for x in items)
    assert sorted(int(x["image"][0, 0, 0]) // 10 for x in items) == list(range(7))
    assert all(x["label"] == x["image"][0, 0, 0] // 10 % 3 for x in items)
    (batch,) = images.batches(src, batch_size=7, seed=0, shuffle=True, num_epochs=1)
    assert batch["image"].shape == (7, 4, 4, 3) and batch["label"].dtype == np.int32
    np.testing.assert_array_equal(batch["label"], batch["image"][:, 0, 0, 0] // 10 % 3)
    whole = images.load_split(
        "tfds:shammie_tiny_images:1.0.0", "train", image_size=4, tfds_dir=str(tmp_path), limit=5
    )
    assert whole.images.shape == (5, 4, 4, 3) and whole.num_classes == 3


def red_fraction(imgs):
    red = imgs[..., 0].astype(int) - imgs[..., 1:].max(-1) > 90
    return red.mean(axis=(1, 2))


def test_voronoi_count_is_seeded_balanced_and_red_grows_with_the_label():
    a, b = images.voronoi_count(60, seed=3), images.voronoi_count(60, seed=3)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(images.voronoi_count(60, seed=4).images, a.images)
    train = images.load_split("procedural:voronoi-count", "train")
    test = images.load_split("procedural:voronoi-count", "test")
    assert train.images.shape == (2048, 32, 32, 3) and test.images.shape == (512, 32, 32, 3)
    assert train.images.dtype == np.uint8 and train.labels.dtype == np.int32
    assert train.class_names == ("0 red", "1 red", "2 red", "3 red", "4 red")
    assert not np.array_equal(train.images[:512], test.images)  # different seeds per split
    counts = np.bincount(train.labels, minlength=5)
    assert counts.min() >= 409 and counts.max() <= 410 and counts.sum() == 2048
    frac = red_fraction(train.images)
    assert (frac[train.labels == 0] == 0).all() and (frac[train.labels > 0] > 0).all()
    means = [frac[train.labels == c].mean() for c in range(5)]
    assert all(lo < hi for lo, hi in zip(means, means[1:])), means
    # more than a couple of distinct colours per image: several cells
    assert (
        min(len(np.unique(img[::4, ::4].reshape(-1, 3) // 64, axis=0)) for img in test.images) > 2
    )
    small = images.load_split("procedural:voronoi-count:100", "test")
    assert len(small) == 25
    assert len(images.load_split("procedural:voronoi-count:100", "train", limit=7)) == 7


def index_set(n):
    """Image i is filled with i, so batches show which examples they hold."""
    imgs = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, 2, 3, 1))
    return images.ImageSet(np.array(imgs), (np.arange(n) % 3).astype(np.int32), CLASSES)


def ids(batch):
    return batch["image"][:, 0, 0, 0].tolist()


def test_batches_shapes_each_example_once_per_epoch_and_reshuffled():
    data = index_set(10)
    ds = images.batches(data, batch_size=5, seed=0, shuffle=True, num_epochs=2)
    got = list(ds)
    assert len(got) == 4
    assert got[0]["image"].shape == (5, 2, 3, 1) and got[0]["image"].dtype == np.uint8
    assert got[0]["label"].shape == (5,) and got[0]["label"].dtype == np.int32
    epoch1, epoch2 = ids(got[0]) + ids(got[1]), ids(got[2]) + ids(got[3])
    assert sorted(epoch1) == sorted(epoch2) == list(range(10))
    assert epoch1 != list(range(10)) and epoch1 != epoch2
    np.testing.assert_array_equal(got[0]["label"], np.asarray(ids(got[0])) % 3)
    kept = dict(batch_size=4, seed=1, shuffle=False, num_epochs=1, drop_remainder=False)
    last = list(images.batches(data, **kept))
    assert [ids(b) for b in last] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    with pytest.raises(DataError, match="too few for a global batch of 16"):
        images.batches(data, batch_size=8, seed=0, shuffle=True, num_epochs=1, shard_count=2)


def test_shards_are_disjoint_and_cover_the_data():
    data = index_set(12)
    seen = []
    for shard in range(3):
        ds = images.batches(
            data, batch_size=2, seed=5, shuffle=True, num_epochs=1, shard_index=shard, shard_count=3
        )
        seen.append([i for b in ds for i in ids(b)])
    assert all(len(s) == 4 for s in seen)
    assert sorted(sum(seen, [])) == list(range(12))


def test_padded_eval_batches_have_one_shape_and_weights_count_each_example_once():
    data = index_set(11)
    real, total = [], 0.0
    for shard in range(2):
        got = list(images.padded_eval_batches(data, 4, shard_index=shard, shard_count=2))
        assert len(got) == 2  # ceil(11 / 8) for every shard
        for b in got:
            assert b["image"].shape == (4, 2, 3, 1) and b["weight"].dtype == np.float32
            assert (b["image"][b["weight"] == 0] == 0).all()
            real += [i for i, w in zip(ids(b), b["weight"]) if w == 1]
            total += float(b["weight"].sum())
    assert total == 11 and sorted(real) == list(range(11))


def test_check_source_lists_the_splits_without_decoding(tmp_path, monkeypatch):
    imgs, labels = random_set()
    zpath = str(tmp_path / "set.zip")
    images.write_image_zip(zpath, imgs, labels, CLASSES, "train", fmt="png")
    monkeypatch.setattr(images, "_decode", lambda *a: pytest.fail("decoded"))
    images.check_source(zpath, ("train",))
    with pytest.raises(DataError, match="has no split 'test' \\(splits found: train\\)"):
        images.check_source(zpath, ("train", "test"))
    (tmp_path / "notes.txt").write_text("not images")
    with pytest.raises(DataError, match="is a file but not a zip"):
        images.check_source(str(tmp_path / "notes.txt"), ("train",))
    images.check_source("procedural:voronoi-count:8", ("train", "test"))
