"""Image classification data: (uint8 image [H, W, C], int label) sources and grain batches.

A source string names the data:

    PATH.zip or PATH/             images laid out `split/class_name/*.{jpg,jpeg,png}` (e.g.
        the CIFAR-10 JPEG zip: train/<class>/NNNN.jpg, test/<class>/NNNN.jpg; an extracted
        Imagenette). Class ids are the class folders of all splits, sorted by name, so every
        split shares one labelling. Decoded once with PIL (RGB; 1 channel when every image
        is grayscale) and cached as an .npz under `cache_dir` ($SHAMMIE_CACHE, else
        ~/.cache/shammie/images), keyed by a hash of the path, split, image_size and the
        member list (names and sizes plus CRCs in a zip, mtimes in a folder), so a changed
        member list decodes again.
    procedural:voronoi-count[:N]  seeded 32x32 images whose label is the number of red
        Voronoi cells (0..4); N train examples (default 2048), N // 4 test (default 512).
    tfds:NAME[/CONFIG][:VERSION]  a tfds image dataset prepared as ArrayRecord (fields
        'image', 'label'), read item by item with `tfds.data_source`: nothing is loaded up
        front, so ImageNet-sized data works. The directory is `tfds_dir`, else
        $TFDS_DATA_DIR, else tfds's default.

`image_size > 0` resizes the shorter side to image_size (bilinear) and center-crops a
square; 0 keeps the stored size, which must then be the same for every image.

`load_split` returns an in-memory `ImageSet`; `open_source` a random-access source (`len`,
`[i] -> {'image', 'label'}`): the ImageSet itself, or the tfds reader. `batches` serves
shuffled, sharded grain batches {'image': uint8 [B, H, W, C], 'label': int32 [B]} in the
`data.batching.index_batches` order; `padded_eval_batches` serves one fixed-shape pass with
a float32 'weight' (0 on padding rows). Problems a user can fix raise
`data.examples.DataError` with one sentence naming the fix.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import os
import re
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from typing import Any

import grain
import numpy as np
from absl import logging
from PIL import Image

from data import tfds_source
from data.batching import index_batches
from data.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
CACHE_FORMAT = 1  # bump when decoding changes: old cache files are then ignored
PROGRESS_EVERY_S = 5.0
# what a corrupt or non-image member raises (PIL, zlib, zipfile's CRC check)
DECODE_ERRORS = (OSError, ValueError, SyntaxError, zipfile.BadZipFile, Image.DecompressionBombError)
FORMS = "a .zip, a folder laid out split/class/image, procedural:voronoi-count or tfds:NAME"


@dataclasses.dataclass(eq=False)
class ImageSet:
    """Images uint8 [N, H, W, C], labels int32 [N] and the class names (label id order)."""

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"image": self.images[i], "label": int(self.labels[i])}


# ----------------------------------------------------------------------------- sources


def default_cache_dir() -> str:
    return os.environ.get("SHAMMIE_CACHE") or os.path.expanduser("~/.cache/shammie/images")


def _parse(source: str) -> tuple[str, str]:
    """(kind, rest): ('procedural', 'voronoi-count:N'), ('tfds', NAME), ('zip'|'folder', path)."""
    kind, sep, rest = source.partition(":")
    if sep and kind in ("procedural", "tfds"):
        return kind, rest
    path = os.path.expanduser(source)
    if os.path.isdir(path):
        return "folder", path
    if os.path.isfile(path):
        if zipfile.is_zipfile(path):
            return "zip", path
        raise DataError(f"Image source {source!r} is a file but not a zip; pass {FORMS}.")
    if re.match(r"[A-Za-z][\w+.-]+:", source):
        raise DataError(f"Image source {source!r} is not a supported form; pass {FORMS}.")
    raise DataError(f"Image source {source!r} does not exist; pass {FORMS}.")


def _image_member(parts: list[str]) -> bool:
    return (
        len(parts) == 3
        and parts[2].lower().endswith(IMAGE_EXTENSIONS)
        and not any(p.startswith((".", "__")) for p in parts)
    )


def _list_zip(path: str, split: str) -> tuple[set, set, list]:
    """(splits, class names, [(class, member name, (size, crc))] of `split`) of a zip."""
    splits, classes, members = set(), set(), []
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            parts = info.filename.rstrip("/").split("/")
            if parts[0].startswith((".", "__")) or (len(parts) == 1 and not info.is_dir()):
                continue
            splits.add(parts[0])
            if len(parts) >= 3 or (len(parts) == 2 and info.is_dir()):
                classes.add(parts[1])
            if not info.is_dir() and parts[0] == split and _image_member(parts):
                members.append((parts[1], info.filename, (info.file_size, info.CRC)))
    return splits, classes, members


def _list_folder(root: str, split: str) -> tuple[set, set, list]:
    """Like `_list_zip` for a folder; files are listed (with size, mtime) for `split` only."""
    subdirs = lambda d: {
        e.name for e in os.scandir(d) if e.is_dir() and not e.name.startswith((".", "__"))
    }
    splits, classes, members = subdirs(root), set(), []
    for s in splits:
        classes |= subdirs(os.path.join(root, s))
    if split in splits:
        for c in subdirs(os.path.join(root, split)):
            for e in os.scandir(os.path.join(root, split, c)):
                if e.is_file() and _image_member([split, c, e.name]):
                    st = e.stat()
                    members.append((c, f"{split}/{c}/{e.name}", (st.st_size, st.st_mtime_ns)))
    return splits, classes, members


def _cache_path(kind: str, path: str, split: str, image_size: int, members: list, cache_dir: str):
    key = json.dumps([CACHE_FORMAT, kind, os.path.abspath(path), split, image_size, members])
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    stem = os.path.basename(os.path.normpath(path)).replace(".", "_")
    return os.path.join(
        cache_dir or default_cache_dir(), f"{stem}-{split}-{image_size}-{digest}.npz"
    )


def _read_cache(path: str) -> ImageSet | None:
    try:
        with np.load(path, allow_pickle=False) as f:
            return ImageSet(f["images"], f["labels"], tuple(str(c) for c in f["class_names"]))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None  # absent, or a broken file: decode again


def _write_cache(path: str, data: ImageSet) -> None:
    """Writes the cache atomically (temp file + os.replace); a failure only logs a warning."""
    tmp = None
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            names = np.asarray(data.class_names, dtype=str)
            np.savez(f, images=data.images, labels=data.labels, class_names=names)
        os.replace(tmp, path)
    except OSError as e:
        logging.warning("could not write the image cache %s (%s); continuing without it", path, e)
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)


# ----------------------------------------------------------------------------- decoding


def _fit(im: Image.Image, size: int) -> Image.Image:
    """Resizes the shorter side to `size` (bilinear), then center-crops size x size."""
    w, h = im.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) != (w, h):
        im = im.resize((nw, nh), Image.Resampling.BILINEAR)
    left, top = (nw - size) // 2, (nh - size) // 2
    return im.crop((left, top, left + size, top + size))


def _decode(data: bytes, image_size: int) -> np.ndarray:
    """Encoded bytes -> uint8 [H, W] (grayscale) or [H, W, 3]; resized when image_size > 0."""
    with Image.open(io.BytesIO(data)) as im:
        if image_size and im.format == "JPEG":
            im.draft(im.mode, (image_size, image_size))  # DCT-domain downscale, >= the size
        im = im.convert("L" if im.mode in ("1", "L", "LA") else "RGB")
        return np.asarray(_fit(im, image_size) if image_size else im)


def _collect(n: int, get: Callable[[int], np.ndarray], name: Callable[[int], str], what: str):
    """[get(k) for k < n] stacked to uint8 [n, H, W, C], logging progress on long runs."""
    arrays, start = [], time.monotonic()
    last = start
    for k in range(n):
        arrays.append(get(k))
        now = time.monotonic()
        if now - last >= PROGRESS_EVERY_S:
            rate = (k + 1) / (now - start)
            logging.info(
                "%s: %d/%d images, %.0f/s, ETA %.0f s", what, k + 1, n, rate, (n - k - 1) / rate
            )
            last = now
    for k, a in enumerate(arrays):
        if a.shape[:2] != arrays[0].shape[:2]:
            raise DataError(
                f"{name(k)} is {a.shape[1]}x{a.shape[0]} but {name(0)} is "
                f"{arrays[0].shape[1]}x{arrays[0].shape[0]}; set image_size to resize them all."
            )
    if all(a.ndim == 2 for a in arrays):
        return np.stack(arrays)[..., None]
    rgb = [a if a.ndim == 3 else np.repeat(a[..., None], 3, axis=2) for a in arrays]
    return np.stack(rgb)


def _decode_members(kind: str, path: str, members: list, image_size: int) -> np.ndarray:
    zf = zipfile.ZipFile(path) if kind == "zip" else None

    def read(name: str) -> bytes:
        if zf is not None:
            return zf.read(name)
        with open(os.path.join(path, name), "rb") as f:
            return f.read()

    def get(k: int) -> np.ndarray:
        name = members[k][1]
        try:
            return _decode(read(name), image_size)
        except DECODE_ERRORS as e:
            raise DataError(
                f"{path}: {name} is not a decodable image ({type(e).__name__}); "
                "remove or replace it."
            ) from None

    try:
        where = f"decoding {os.path.basename(path)}/{members[0][1].split('/')[0]}"
        return _collect(len(members), get, lambda k: f"{path}: {members[k][1]}", where)
    finally:
        if zf is not None:
            zf.close()


def check_source(source: str, splits: Sequence[str]) -> None:
    """Raises DataError unless `source` parses and, for a zip or folder, each of `splits`
    holds images in class folders; decodes nothing (a long job's check before it starts)."""
    kind, rest = _parse(source)
    for split in splits if kind in ("zip", "folder") else ():
        _split_members(kind, rest, split)


def _split_members(kind: str, path: str, split: str) -> tuple[set, list]:
    """(class names, members of `split`) of a zip or folder; DataError if it has none."""
    splits, classes, members = (_list_zip if kind == "zip" else _list_folder)(path, split)
    if split not in splits:
        found = ", ".join(sorted(splits)) or "none"
        raise DataError(
            f"{path} has no split {split!r} (splits found: {found}); pick one of them or "
            "lay the images out as split/class_name/image."
        )
    if not members:
        raise DataError(
            f"{path}: split {split!r} has no .jpg/.jpeg/.png images in class folders; "
            f"add images as {split}/class_name/image.jpg."
        )
    return classes, members


def _load_files(kind: str, path: str, split: str, image_size: int, cache_dir: str, limit: int):
    classes, members = _split_members(kind, path, split)
    members.sort()
    if 0 < limit < len(members):  # a fixed random subset (in member order): every class in it
        keep = np.sort(np.random.default_rng(0).choice(len(members), limit, replace=False))
        members = [members[k] for k in keep]
    class_names = tuple(sorted(classes))
    cache = _cache_path(kind, path, split, image_size, [class_names, members], cache_dir)
    cached = _read_cache(cache)
    if cached is not None:
        return cached
    start = time.monotonic()
    ids = {c: i for i, c in enumerate(class_names)}
    labels = np.asarray([ids[m[0]] for m in members], np.int32)
    data = ImageSet(_decode_members(kind, path, members, image_size), labels, class_names)
    logging.info(
        "decoded %d images in %.1f s; cached as %s", len(data), time.monotonic() - start, cache
    )
    _write_cache(cache, data)
    return data


# ----------------------------------------------------------------------------- procedural

PROCEDURAL_SPLITS = {"train": (0, 1), "test": (1, 4)}  # split -> (seed, divisor of N)
VORONOI_DEFAULT_N = 2048
VORONOI_CLASSES = 5
# red, green, blue, yellow, cyan, purple, gray, white: red is the only colour with
# R - max(G, B) above 70 (it has 180), so red pixels are easy to count.
PALETTE_HEX = "dc2828 32aa46 2850d2 e6d23c 3cc8d2 823cbe 808080 ebebe6"
PALETTE = np.array([list(bytes.fromhex(h)) for h in PALETTE_HEX.split()], np.float32)


def _voronoi_chunk(rng: np.random.Generator, labels: np.ndarray, size: int) -> np.ndarray:
    """Images uint8 [B, size, size, 3] with exactly labels[b] red cells each."""
    b, grid, slots = len(labels), 4, np.arange(16)
    num_cells = rng.integers(6, 13, size=b)
    # Seed points: one per distinct cell of a 4x4 grid, jittered inside it, so cells are
    # never tiny; slot order is random, so the first `label` slots (red) land anywhere.
    block = np.argsort(rng.random((b, slots.size)), axis=1)
    jitter = rng.uniform(0.2, 0.8, (2, b, slots.size))
    py, px = ((block // grid + jitter[0]) * size / grid, (block % grid + jitter[1]) * size / grid)
    py[slots >= num_cells[:, None]] = 1e4  # unused slots: too far to own a pixel
    colour = np.where(slots < labels[:, None], 0, rng.integers(1, len(PALETTE), (b, slots.size)))
    c = np.arange(size, dtype=np.float32) + 0.5  # pixel centres
    dy = (c[None, :, None] - py[:, None, :].astype(np.float32)) ** 2  # [B, H, 16]
    dx = (c[None, :, None] - px[:, None, :].astype(np.float32)) ** 2  # [B, W, 16]
    owner = (dy[:, :, None] + dx[:, None, :]).argmin(-1).reshape(b, -1)  # [B, H*W]
    # Per-cell shading: a gentle linear gradient (up to ~+-23 levels) in a random direction.
    gy, gx = rng.uniform(-16, 16, (2, b, slots.size)) * np.sqrt(0.5)
    take = lambda a: np.take_along_axis(a.astype(np.float32), owner, axis=1)  # cell -> pixel
    u = (c - size / 2) / (size / 2)  # [-1, 1]
    shade = take(gy) * np.repeat(u, size) + take(gx) * np.tile(u, size)
    noise = rng.standard_normal((b, size * size, 3), dtype=np.float32) * 8
    pixels = PALETTE[take(colour).astype(np.int64)] + shade[..., None] + noise
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8).reshape(b, size, size, 3)


def voronoi_count(num_examples: int, seed: int, size: int = 32) -> ImageSet:
    """`num_examples` RGB images of 6-12 flat-coloured Voronoi cells (8-colour palette,
    per-cell linear shading, N(0, 8) noise); the label is the number of red cells, 0..4,
    balanced (drawn first, then exactly that many cells are red). Deterministic in seed."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(num_examples) % VORONOI_CLASSES).astype(np.int32)
    images = np.empty((num_examples, size, size, 3), np.uint8)
    for lo in range(0, num_examples, 256):  # chunks keep the [B, P, 16] distances small
        images[lo : lo + 256] = _voronoi_chunk(rng, labels[lo : lo + 256], size)
    names = tuple(f"{c} red" for c in range(VORONOI_CLASSES))
    return ImageSet(images, labels, names)


def _procedural(spec: str, split: str, limit: int) -> ImageSet:
    name, _, count = spec.partition(":")
    if name != "voronoi-count":
        raise DataError(f"procedural:{name} is not a known dataset; use procedural:voronoi-count.")
    if count and not (count.isdigit() and int(count) > 0):
        raise DataError(f"procedural:{spec}: {count!r} is not a positive example count.")
    if split not in PROCEDURAL_SPLITS:
        raise DataError(
            f"procedural:{spec} has no split {split!r} (splits: {', '.join(PROCEDURAL_SPLITS)})."
        )
    seed, divisor = PROCEDURAL_SPLITS[split]
    n = max(1, (int(count) if count else VORONOI_DEFAULT_N) // divisor)
    data = voronoi_count(n, seed=seed)
    if 0 < limit < n:
        data = ImageSet(data.images[:limit], data.labels[:limit], data.class_names)
    return data


# ----------------------------------------------------------------------------- tfds


class TfdsImages:
    """A prepared tfds image dataset, item by item: `len`, `[i] -> {'image', 'label'}`."""

    def __init__(self, records: Any, image_size: int, limit: int, class_names: tuple) -> None:
        self.records, self.image_size, self.class_names = records, image_size, class_names
        self.size = min(len(records), limit) if limit > 0 else len(records)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> dict[str, Any]:
        record = self.records[int(i)]
        image = np.asarray(record["image"], np.uint8)
        if self.image_size:
            im = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
            image = np.asarray(_fit(im, self.image_size))
        return {
            "image": image if image.ndim == 3 else image[..., None],
            "label": int(record["label"]),
        }


def _open_tfds(name: str, split: str, image_size: int, limit: int, tfds_dir: str) -> TfdsImages:
    records = tfds_source.open_split(name, split, tfds_dir)
    features = records.dataset_info.features
    if "image" not in features or "label" not in features:
        raise DataError(
            f"tfds dataset {name!r} has fields {', '.join(sorted(features.keys()))}; an image "
            "dataset needs 'image' and 'label'."
        )
    names = getattr(features["label"], "names", None) or []
    return TfdsImages(records, image_size, limit, tuple(names))


# ----------------------------------------------------------------------------- public API


def open_source(
    source: str,
    split: str,
    *,
    image_size: int = 0,
    cache_dir: str = "",
    limit: int = 0,
    tfds_dir: str = "",
) -> ImageSet | TfdsImages:
    """A random-access source of `split` (`len`, `[i] -> {'image': uint8 HWC, 'label'}`):
    the in-memory ImageSet of a zip/folder/procedural source, the lazy reader of tfds."""
    kind, rest = _parse(source)
    if kind == "tfds":
        return _open_tfds(rest, split, image_size, limit, tfds_dir)
    return load_split(source, split, image_size=image_size, cache_dir=cache_dir, limit=limit)


def load_split(
    source: str,
    split: str,
    *,
    image_size: int = 0,
    cache_dir: str = "",
    limit: int = 0,
    tfds_dir: str = "",
) -> ImageSet:
    """`split` of `source` (module docstring) in memory; `limit > 0` keeps that many
    examples (a fixed random subset for files, the first ones otherwise). A tfds source
    is read whole: use `open_source` for data that does not fit in memory."""
    if image_size < 0 or limit < 0:
        raise DataError(f"image_size={image_size} and limit={limit} must be >= 0.")
    kind, rest = _parse(source)
    if kind == "procedural":
        return _procedural(rest, split, limit)
    if kind == "tfds":
        src = _open_tfds(rest, split, image_size, limit, tfds_dir)
        labels = np.zeros(len(src), np.int32)

        def get(k: int) -> np.ndarray:
            item = src[k]
            labels[k] = item["label"]
            return item["image"]

        images = _collect(len(src), get, lambda k: f"{source} item {k}", f"reading {source}")
        return ImageSet(images, labels, src.class_names)
    return _load_files(kind, rest, split, image_size, cache_dir, limit)


def _gather(data: ImageSet | TfdsImages, idx: np.ndarray) -> dict[str, np.ndarray]:
    """The examples at `idx`: {'image': uint8 [B, H, W, C], 'label': int32 [B]}."""
    if isinstance(data, ImageSet):
        return {"image": data.images[idx], "label": data.labels[idx].astype(np.int32)}
    items = [data[int(i)] for i in (idx if len(idx) else [0])]
    shapes = {x["image"].shape for x in items}
    if len(shapes) > 1:
        raise DataError(f"Images of shapes {sorted(shapes)} meet in one batch; set image_size.")
    images = np.stack([x["image"] for x in items])
    labels = np.asarray([x["label"] for x in items], np.int32)
    return {"image": images[: len(idx)], "label": labels[: len(idx)]}


def _check_batching(batch_size: int, shard_index: int, shard_count: int) -> None:
    if batch_size < 1 or not 0 <= shard_index < shard_count:
        raise ValueError(
            f"batch_size={batch_size} must be >= 1 and 0 <= {shard_index=} < {shard_count=}."
        )


def batches(
    data: ImageSet | TfdsImages,
    *,
    batch_size: int,
    seed: int,
    shuffle: bool,
    num_epochs: int | None,
    shard_index: int = 0,
    shard_count: int = 1,
    drop_remainder: bool = True,
) -> grain.MapDataset:
    """This process's batches {'image': uint8 [B, H, W, C], 'label': int32 [B]}.

    Order as `data.batching.index_batches`: shuffle(seed) -> repeat(num_epochs; None =
    forever) -> global batches of batch_size * shard_count -> this process's slice, so
    every epoch is a new permutation and processes read disjoint examples."""
    _check_batching(batch_size, shard_index, shard_count)
    n, global_batch = len(data), batch_size * shard_count
    if n == 0 or (num_epochs is not None and drop_remainder and n * num_epochs < global_batch):
        raise DataError(
            f"{n} images are too few for a global batch of {global_batch}; lower batch_size."
        )
    ds = index_batches(
        n,
        batch_size=batch_size,
        shard_index=shard_index,
        shard_count=shard_count,
        seed=seed,
        shuffle=shuffle,
        num_epochs=num_epochs,
        drop_remainder=drop_remainder,
    )
    return ds.map(functools.partial(_gather, data))


def _padded_batch(data: ImageSet | TfdsImages, lo: int, batch_size: int, b: int) -> dict:
    idx = b + lo + np.arange(batch_size)
    real = idx < len(data)
    batch = _gather(data, np.where(real, idx, 0))
    batch["image"][~real] = 0
    batch["label"][~real] = 0
    batch["weight"] = real.astype(np.float32)
    return batch


def padded_eval_batches(
    data: ImageSet | TfdsImages, batch_size: int, shard_index: int = 0, shard_count: int = 1
) -> grain.MapDataset:
    """One pass in order, every batch [batch_size] with a float32 'weight' (1 real, 0
    padding): global batch g holds examples g * batch_size * shard_count + ..., this
    process its slice; every process gets the same number of batches."""
    _check_batching(batch_size, shard_index, shard_count)
    global_batch = batch_size * shard_count
    stop = max(1, -(-len(data) // global_batch)) * global_batch
    return grain.MapDataset.range(0, stop, global_batch).map(
        functools.partial(_padded_batch, data, shard_index * batch_size, batch_size)
    )


# ----------------------------------------------------------------------------- writing


def _encode(image: np.ndarray, fmt: str) -> bytes:
    options = {"format": "PNG"} if fmt == "png" else {"format": "JPEG", "quality": 95}
    buf = io.BytesIO()
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buf, **options)
    return buf.getvalue()


def _layout(images, labels, class_names, split: str, fmt: str):
    """(relative name 'split/class/NNNN.fmt', encoded bytes) per image, numbered per class."""
    if fmt not in ("jpg", "png"):
        raise ValueError(f"fmt={fmt!r} must be 'jpg' or 'png'.")
    counts: dict[int, int] = {}
    for image, label in zip(images, labels):
        k = counts[int(label)] = counts.get(int(label), -1) + 1
        yield f"{split}/{class_names[int(label)]}/{k:04d}.{fmt}", _encode(np.asarray(image), fmt)


def write_image_folder(root, images, labels, class_names, split: str, fmt: str = "jpg") -> None:
    """Writes uint8 images [N, H, W, C] as root/split/class_name/NNNN.{jpg,png}."""
    for name, data in _layout(images, labels, class_names, split, fmt):
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)


def write_image_zip(path, images, labels, class_names, split: str, fmt: str = "jpg") -> None:
    """Adds the split to the zip at `path` (created if missing) in the folder layout."""
    with zipfile.ZipFile(path, "a") as z:
        for name, data in _layout(images, labels, class_names, split, fmt):
            z.writestr(name, data)
