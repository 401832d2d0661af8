"""Image classification: a ViT over grid patches or superpixel tokens (models/vit.py).

The input pipeline only reads uint8 images and labels (data/images.py: a zip or folder
of split/class/*.jpg, `tfds:NAME`, or `procedural:voronoi-count`); everything else runs
on the accelerator inside the jit-compiled step, in SuiT's order:

    augment (data/augment.py)  ->  superpixels (data/superpixels.py) on the augmented
    image, at the feature grid's resolution  ->  normalise  ->  Mixup/CutMix of the
    images only (the label maps stay the un-mixed ones, as SuiT's code does)  ->  model
    ->  cross-entropy on soft targets (label smoothing, mixed targets)

`superpixels.kind`: none (patch tokenizer), grid (SuiT's stem with square-grid labels:
the stem without superpixels), slic (SuiT). Evaluation: centre crop (images larger than
the model's), no augmentation; `Evaluator` (this module) evaluates with another number of
superpixels (`num_segments`: adaptive inference) and reports top-1 accuracy.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from data import augment, examples, images as images_lib, superpixels
from framework import config as config_lib, evaluators
from framework.tasks import base
from models import vit

SUPERPIXELS = ("none", "grid", "slic")
NORMALIZATIONS = {
    "imagenet": (augment.IMAGENET_MEAN, augment.IMAGENET_STD),
    "cifar10": (augment.CIFAR10_MEAN, augment.CIFAR10_STD),
}


def default_config() -> ml_collections.ConfigDict:
    """base_config() with the image task's model, data, augment and superpixel sections."""
    c = config_lib.base_config()
    c.task = "framework.tasks.image_classify"
    fields = vit.ViTConfig.__dataclass_fields__
    c.model = ml_collections.ConfigDict({k: f.default for k, f in fields.items()})
    c.data = ml_collections.ConfigDict(
        dict(
            # a .zip or folder of <split>/<class>/*.jpg|png, 'tfds:NAME', or
            # 'procedural:voronoi-count[:N]' (data/images.py)
            source="procedural:voronoi-count",
            train_split="train",
            eval_split="test",
            image_size=0,  # > 0: resize the shorter side and centre-crop when decoding
            cache_dir="",  # decoded-image cache ('' = $SHAMMIE_CACHE or ~/.cache/shammie)
            limit=0,  # > 0: only the first N training images (quick runs)
            reader_threads=1,  # grain threads reading batches
            reader_processes=0,  # > 0: grain worker processes (CPU-heavy decoding, tfds)
            normalization="cifar10",  # imagenet | cifar10 (mean/std per channel)
        )
    )
    c.augment = ml_collections.ConfigDict(
        dict(
            crop_padding=4,  # random crop with zero padding (images the model's size)
            random_resized_crop=False,  # Inception crop instead (images larger than it)
            flip=True,
            color_jitter=0.0,
            rand_augment_ops=0,  # RandAugment: ops per image (0: off), magnitude, its std
            rand_augment_magnitude=9.0,
            rand_augment_std=0.5,
            random_erasing=0.0,  # probability
            mixup_alpha=0.0,
            cutmix_alpha=0.0,
            label_smoothing=0.1,
        )
    )
    c.superpixels = ml_collections.ConfigDict(
        dict(kind="none", num_segments=64, compactness=10.0, iterations=10)
    )
    c.evals = ml_collections.ConfigDict(
        dict(test=dict(kind="framework.tasks.image_classify", split="test", batch_size=0))
    )
    return config_lib.lock(c)


class Task(base.Task):
    """Classification of images from data.source by models/vit.py's ViT."""

    runtime_keys = ("data.cache_dir", "data.reader_threads", "data.reader_processes", "data.limit")
    init_sections = ("model", "superpixels")
    data_free_dry_run = True  # Task(config, abstract=True): model.channels/num_classes

    def __init__(self, config: ml_collections.ConfigDict, abstract: bool = False):
        super().__init__(config)
        d = config.data
        if config.superpixels.kind not in SUPERPIXELS:
            raise config_lib.ConfigError(
                f"superpixels.kind={config.superpixels.kind!r}; choose one of {SUPERPIXELS}."
            )
        if d.normalization not in NORMALIZATIONS:
            raise config_lib.ConfigError(
                f"data.normalization={d.normalization!r}; choose one of {tuple(NORMALIZATIONS)}."
            )
        self._eval_sets: dict[str, Any] = {}
        self.train_set = None
        m = dict(config.model)
        if not abstract:  # channels and classes come from the data
            try:
                self.train_set = images_lib.open_source(
                    d.source,
                    d.train_split,
                    image_size=d.image_size,
                    cache_dir=d.cache_dir,
                    limit=d.limit,
                )
            except examples.DataError as e:
                raise config_lib.ConfigError(str(e)) from None
            self.image_shape = tuple(np.shape(self.train_set[0]["image"]))
            m["channels"] = self.image_shape[-1]
            m["num_classes"] = self.train_set.num_classes
        m["tokenizer"] = "patch" if config.superpixels.kind == "none" else "suit"
        try:
            self.model_config = vit.ViTConfig(**m)
        except ValueError as e:
            raise config_lib.ConfigError(f"model: {e}") from None
        if self.train_set and self.image_shape[0] < self.model_config.image_size:
            raise config_lib.ConfigError(
                f"the images are {self.image_shape[0]} pixels, smaller than "
                f"model.image_size={self.model_config.image_size}; lower it or set "
                "data.image_size."
            )
        self.num_segments = self.checked_segments(
            int(config.superpixels.num_segments), "superpixels.num_segments"
        )

    def checked_segments(self, k: int, setting: str) -> int:
        """`k` if a superpixel count of `k` labels exactly k segments, else ConfigError:
        SLIC (and the grid arm) start from the gy x gx grid `superpixels.grid_shape`
        picks, whose product may exceed k (32 -> 6 x 6), and labels >= k would be
        dropped from the tokens without a trace."""
        if k < 1:
            raise config_lib.ConfigError(f"{setting}={k}: a superpixel count must be >= 1.")
        if self.config.superpixels.kind == "none":
            return k
        side = self.model_config.feature_size
        gy, gx = superpixels.grid_shape(side, side, k)
        if gy * gx != k:
            raise config_lib.ConfigError(
                f"{setting}={k}: superpixels start from a {gy}x{gx} grid on the "
                f"{side}x{side} feature map, i.e. {gy * gx} segments; use {gy * gx}."
            )
        return k

    # ---- model and loss ------------------------------------------------------------

    def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
        """The ViT (patch) or SuiT (grid or slic superpixels) of config.model."""
        return vit.ViT(self.model_config, rngs=rngs)

    def segments(self, images_BHWC: jax.Array, num_segments: int) -> jax.Array | None:
        """Label maps [B,h,w] on the feature grid of images in [0, 1] (None: patches)."""
        kind, cfg = self.config.superpixels.kind, self.model_config
        if kind == "none":
            return None
        side = cfg.feature_size
        B, H, W, C = images_BHWC.shape
        if kind == "grid":
            gy, gx = superpixels.grid_shape(side, side, num_segments)
            grid = jnp.asarray(superpixels.grid_labels(side, side, gy, gx))
            return jnp.broadcast_to(grid, (B, side, side))
        small = images_BHWC
        if side != H:  # SuiT runs SLIC on the image downsampled to the feature grid
            small = jax.image.resize(images_BHWC, (B, side, side, C), "linear", antialias=True)
        sp = self.config.superpixels
        return superpixels.slic(small, num_segments, sp.compactness, sp.iterations)

    def _augment(self, key: jax.Array, x_BHWC: jax.Array) -> jax.Array:
        """Random crop (or Inception crop), flip, RandAugment, colour jitter."""
        a, size = self.config.augment, self.model_config.image_size
        k_crop, k_ra, k_cj = jax.random.split(key, 3)
        if a.random_resized_crop:
            x_BHWC = augment.random_resized_crop(k_crop, x_BHWC, size)
        else:
            if x_BHWC.shape[1] != size:
                x_BHWC = augment.center_crop_resize(x_BHWC, size)
            x_BHWC = augment.random_crop_flip(k_crop, x_BHWC, a.crop_padding, a.flip)
        if a.rand_augment_ops:
            mean = NORMALIZATIONS[self.config.data.normalization][0][: x_BHWC.shape[-1]]
            x_BHWC = augment.rand_augment(  # geometric ops fill with the mean, as timm's
                k_ra,
                x_BHWC,
                a.rand_augment_ops,
                a.rand_augment_magnitude,
                a.rand_augment_std,
                fill=mean,
            )
        if a.color_jitter:
            x_BHWC = augment.color_jitter(k_cj, x_BHWC, a.color_jitter)
        return x_BHWC

    def normalize(self, x_BHWC: jax.Array) -> jax.Array:
        """Per-channel standardisation by data.normalization."""
        mean, std = NORMALIZATIONS[self.config.data.normalization]
        c = x_BHWC.shape[-1]
        return augment.normalize(x_BHWC, mean[:c], std[:c])

    def loss(self, model, batch, rng):
        """Training (rng given): augmented, mixed, smoothed cross-entropy; evaluation:
        plain cross-entropy and top-1 accuracy (weighted by batch['weight'])."""
        if rng is None:
            return self.eval_loss(model, batch, self.num_segments)
        a, K = self.config.augment, self.model_config.num_classes
        k_aug, k_erase, k_mix, k_drop = jax.random.split(rng, 4)
        x_BHWC = self._augment(k_aug, batch["image"].astype(jnp.float32) / 255.0)
        labels_BHW = self.segments(x_BHWC, self.num_segments)  # before erasing and mixing
        x_BHWC = self.normalize(x_BHWC)
        if a.random_erasing:
            x_BHWC = augment.random_erasing(
                k_erase, x_BHWC, a.random_erasing, mode="pixel", noise="normal"
            )
        targets_BK = augment.smooth_labels(batch["label"], K, a.label_smoothing)
        if a.mixup_alpha or a.cutmix_alpha:
            x_BHWC, targets_BK, _ = augment.mixup_cutmix(
                k_mix, x_BHWC, targets_BK, a.mixup_alpha, a.cutmix_alpha
            )
        logits_BK = model(
            x_BHWC, labels_BHW, num_segments=self.num_segments, train=True, key=k_drop
        )
        loss = optax.softmax_cross_entropy(logits_BK, targets_BK).mean()
        correct = jnp.argmax(logits_BK, -1) == batch["label"]
        return loss, {"loss": loss, "accuracy": correct.mean()}

    def eval_loss(self, model, batch, num_segments: int) -> tuple[jax.Array, dict]:
        """Cross-entropy and top-1 accuracy with `num_segments` superpixels."""
        size = self.model_config.image_size
        x_BHWC = batch["image"].astype(jnp.float32) / 255.0
        if x_BHWC.shape[1] != size:
            x_BHWC = augment.center_crop_resize(x_BHWC, size)
        labels_BHW = self.segments(x_BHWC, num_segments)
        logits_BK = model(self.normalize(x_BHWC), labels_BHW, num_segments=num_segments)
        w_B = batch["weight"]
        ce_B = optax.softmax_cross_entropy_with_integer_labels(logits_BK, batch["label"])
        correct_B = (jnp.argmax(logits_BK, -1) == batch["label"]).astype(jnp.float32)
        n = jnp.maximum(w_B.sum(), 1.0)
        metrics = {"loss": (ce_B * w_B).sum() / n, "accuracy": (correct_B * w_B).sum() / n}
        return metrics["loss"], {**metrics, "_weight": w_B.sum()}

    # ---- data ----------------------------------------------------------------------

    def train_dataset(self, *, batch_size, seed, shard_index, shard_count):
        """Shuffled, endlessly repeated uint8 image batches."""
        return images_lib.batches(
            self.train_set,
            batch_size=batch_size,
            seed=seed,
            shuffle=True,
            num_epochs=None,
            shard_index=shard_index,
            shard_count=shard_count,
        )

    def batch_spec(self, batch_size: int) -> dict[str, tuple] | None:
        """A training batch's shapes when the task has no data (dry runs), else None."""
        if self.train_set is not None:
            return None
        side, c = self.config.data.image_size or self.model_config.image_size, self.model_config
        return {
            "image": ((batch_size, side, side, c.channels), jnp.uint8),
            "label": ((batch_size,), jnp.int32),
        }

    def readers(self) -> tuple[int, int]:
        """data.reader_threads and data.reader_processes."""
        d = self.config.data
        if d.reader_threads < 1 or d.reader_processes < 0:
            raise config_lib.ConfigError(
                f"data.reader_threads={d.reader_threads} must be >= 1 and "
                f"data.reader_processes={d.reader_processes} >= 0."
            )
        return d.reader_threads, d.reader_processes

    def eval_set(self, split: str) -> Any:
        """The decoded split (cached after the first call)."""
        if split not in self._eval_sets:
            d = self.config.data
            name = d.eval_split if split in ("test", "val", "eval") else split
            try:
                self._eval_sets[split] = images_lib.open_source(
                    d.source, name, image_size=d.image_size, cache_dir=d.cache_dir
                )
            except examples.DataError as e:
                raise config_lib.ConfigError(str(e)) from None
        return self._eval_sets[split]

    def eval_batches(self, split, *, batch_size, shard_index, shard_count) -> Iterator[Any]:
        """Every image of `split` once, in fixed-shape batches with a 0/1 'weight'."""
        return images_lib.padded_eval_batches(
            self.eval_set(split), batch_size, shard_index, shard_count
        )

    @property
    def num_train_examples(self) -> int | None:
        """Training images per epoch (None for an abstract task)."""
        return None if self.train_set is None else len(self.train_set)

    def describe_model(self) -> dict[str, float]:
        """Trainable parameters (BatchNorm statistics excluded) and tokens per image."""
        cfg = self.model_config
        tokens = cfg.num_patches if cfg.tokenizer == "patch" else self.num_segments
        return {**vit.describe(cfg, self.num_segments), "tokens": tokens + 1}


class Evaluator(evaluators.Evaluator):
    """Top-1 accuracy and cross-entropy over a split; config key `num_segments` (0 = the
    training number) evaluates with another number of superpixels (adaptive inference)."""

    def __init__(self, name, cfg, task, ctx):
        k = int(cfg.get("num_segments", 0))
        self.num_segments = (
            task.checked_segments(k, f"evals.{name}.num_segments") if k else task.num_segments
        )
        super().__init__(name, cfg, task, ctx)

    def batch_metrics(self, model, batch):
        """The task's evaluation metrics with this evaluator's number of superpixels."""
        return self.task.eval_loss(model, batch, self.num_segments)[1]
