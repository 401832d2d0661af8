"""SuiT (superpixel tokens for ViTs) and its grid-token baselines, one arm per run.

    python -m framework.main --config=configs/suit.py:variant=cpu,arm=suit,\\
data_path=../shared/data/cifar10/cifar10-jpeg.zip --workdir=runs/suit_cpu_suit
    python -m framework.main --config=configs/suit.py:variant=paper --workdir=/tmp/x --dry_run

Arms, at equal token count:
  vit   ViT over grid patches (DeiT's tokenizer)
  stem  SuiT's conv stem and pooling over square-grid labels: the stem without superpixels
  suit  SuiT: the same over SLIC superpixels computed on the augmented image
Arguments:
  variant    tiny (procedural voronoi-count; tests) | procedural (the same, longer: V3)
             | cpu (CIFAR-10 32x32) | paper (SuiT-Tiny, ImageNet-1k at 224, the official
             recipe)
  arm        vit | stem | suit
  data_path  the images (data/images.py source); '' = the variant's default
  epochs     training epochs (0 = the variant's); steps overrides it when > 0; seed
  eval_segments  final evaluations with these superpixel counts ('36+49'; default the
             variant's for stem and suit): adaptive inference, no retraining
The experiment (`python -m experiments.suit.run`) runs every arm with two seeds.
"""

from framework.config import ConfigError, parse_arg
from framework.sweep import product
from framework.tasks import image_classify

ARMS = ("vit", "stem", "suit")
IMAGENET_TRAIN = 1_281_167
SEEDS = {"tiny": (0,), "procedural": (0, 1), "cpu": (0, 1), "paper": (0, 1)}
# Adaptive inference: the final evaluations with fewer superpixels (stem: coarser grids)
EVAL_SEGMENTS = {"tiny": (9,), "procedural": (4, 9), "cpu": (16, 36, 49), "paper": (100, 144)}
SUPERPIXELS = {"vit": "none", "stem": "grid", "suit": "slic"}
VARIANTS = {
    # tiny: 32x32 voronoi-count, 16 tokens; cpu: CIFAR-10, 64 tokens, ~0.8M parameters
    "tiny": dict(
        source="procedural:voronoi-count:512", image_size=32, d=64, layers=2, heads=2, mlp=2,
        patch=8, segments=16, batch=32, epochs=1.0, lr=2e-3, wd=0.05, warmup_epochs=0.1,
        normalization="cifar10",
    ),
    # V3 at CPU scale: the same shapes as tiny, longer, on more images
    "procedural": dict(
        source="procedural:voronoi-count:8192", image_size=32, d=64, layers=2, heads=2, mlp=2,
        patch=8, segments=16, batch=64, epochs=6.0, lr=2e-3, wd=0.05, warmup_epochs=0.5,
        normalization="cifar10",
    ),
    "cpu": dict(
        source="../shared/data/cifar10/cifar10-jpeg.zip", image_size=32, d=128, layers=4,
        heads=4, mlp=4, patch=4, segments=64, batch=128, epochs=1.5, lr=1e-3, wd=0.05,
        warmup_epochs=0.25, normalization="cifar10",
    ),
    # SuiT-Tiny (official scripts/train_tiny.sh + main.py defaults; ../shared/papers/suit.md)
    "paper": dict(
        source="tfds:imagenet2012", image_size=224, d=192, layers=12, heads=3, mlp=4,
        patch=16, segments=196, batch=1024, epochs=300.0, lr=8e-4 * 1024 / 512, wd=0.02,
        warmup_epochs=5.0, normalization="imagenet",
    ),
}  # fmt: skip


def _arg(arg: str | None):
    a = parse_arg(
        arg, variant="cpu", arm="suit", data_path="", epochs=0.0, steps=0, seed=0,
        eval_segments="default",
    )  # fmt: skip
    if a.variant not in VARIANTS:
        raise ConfigError(f"variant={a.variant!r} is unknown; choose one of {sorted(VARIANTS)}.")
    if a.arm not in ARMS:
        raise ConfigError(f"arm={a.arm!r} is unknown; choose one of {ARMS}.")
    return a


def get_config(arg: str | None = None):
    """One arm of one variant (module docstring)."""
    a = _arg(arg)
    v = VARIANTS[a.variant]
    c = image_classify.default_config()
    c.seed = a.seed
    c.model.update(
        dict(
            image_size=v["image_size"], d_model=v["d"], num_layers=v["layers"],
            num_heads=v["heads"], mlp_ratio=v["mlp"], patch_size=v["patch"],
        )
    )  # fmt: skip
    c.data.source = a.data_path or v["source"]
    c.data.normalization = v["normalization"]
    c.superpixels.kind = SUPERPIXELS[a.arm]
    c.superpixels.num_segments = v["segments"]
    c.optimizer.update(dict(name="adamw", lr=v["lr"], b2=0.999, weight_decay=v["wd"]))
    c.optimizer.decay_exclude = r"(cls_token|pos_embed|fourier_b)"  # and all 1-D
    c.schedule.update(dict(name="warmup_cosine", warmup_epochs=v["warmup_epochs"]))
    c.train.batch_size = v["batch"]
    if a.steps:
        c.train.total_steps = a.steps
    else:
        c.train.total_epochs = a.epochs or v["epochs"]
    c.train.log_every_steps = 10 if a.variant == "tiny" else 50
    c.train.keep_checkpoints = 1
    if a.variant == "tiny":  # the test resumes from the middle one
        c.train.keep_checkpoints, c.train.checkpoint_every_epochs = 2, 0.5
    c.train.best_metric = ""
    if a.variant == "paper":
        _paper_recipe(c)
    c.evals.test.batch_size = 256 if a.variant != "tiny" else 64
    segments = a.eval_segments
    if segments == "default":
        segments = "" if a.arm == "vit" else "+".join(map(str, EVAL_SEGMENTS[a.variant]))
    try:
        counts = [int(s) for s in segments.split("+") if s]
    except ValueError:
        counts = [0]
    if any(k < 1 for k in counts):
        raise ConfigError(
            f"eval_segments={segments!r}: give superpixel counts >= 1 joined by '+' (e.g. '36+49')."
        )
    for k in counts:
        with c.unlocked():
            c.evals[f"test_k{k}"] = dict(
                kind="framework.tasks.image_classify", split="test", num_segments=k,
                final_only=True, batch_size=c.evals.test.batch_size,
            )  # fmt: skip
    return c


def _paper_recipe(c) -> None:
    """SuiT-Tiny's ImageNet recipe: DeiT augmentation, CutMix after superpixels, EMA."""
    c.model.update(dict(downsample=2, drop_path=0.0))
    c.model.channels, c.model.num_classes = 3, 1000  # for dry runs without the data
    c.data.update(dict(image_size=256, train_split="train", eval_split="validation"))
    c.data.reader_processes = 8  # JPEG decoding and resizing of full-size ImageNet images
    c.augment.update(
        dict(
            random_resized_crop=True, rand_augment_ops=2, rand_augment_magnitude=9.0,
            rand_augment_std=0.5, random_erasing=0.25, mixup_alpha=0.0, cutmix_alpha=1.0,
            label_smoothing=0.1,
            # timm ignores color_jitter=0.3 when RandAugment is on; so do we
            color_jitter=0.0,
        )
    )  # fmt: skip
    c.schedule.final_lr_fraction = 1e-5 / c.optimizer.lr
    c.optimizer.grad_clip_norm = 1.0
    c.train.ema_decay = 0.99996
    # In steps, so that a dry run needs no data: ImageNet-1k has 1,281,167 training images
    epoch = round(IMAGENET_TRAIN / c.train.batch_size)
    epochs = c.train.total_epochs
    c.train.total_epochs, c.schedule.warmup_epochs = 0.0, 0.0
    c.train.total_steps = c.train.total_steps or round(epochs * epoch)
    c.schedule.warmup_steps = 5 * epoch
    c.train.checkpoint_every_steps = epoch
    c.train.eval_every_steps = 10 * epoch


def get_sweep(arg: str | None = None) -> list[dict]:
    """Every arm with the variant's seeds."""
    a = _arg(arg)
    return product({"arg:arm": list(ARMS)}, {"arg:seed": list(SEEDS[a.variant])})
