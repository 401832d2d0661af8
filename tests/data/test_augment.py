"""On-device augmentation: shapes and ranges, exact crop/flip/mix semantics, RandAugment ops
against PIL, the sampling rules of RandAugment, random erasing and CutMix."""

from __future__ import annotations

import math
from functools import partial

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from data import augment

B, H, W = 8, 16, 16
# Jitted once per configuration, as in the train step (eager vmaps are slow to dispatch);
# probabilities and magnitudes are traced, so one compilation serves several values.
crop_flip = jax.jit(augment.random_crop_flip, static_argnames=("pad", "flip"))
resized_crop = jax.jit(augment.random_resized_crop, static_argnames=("size", "scale", "ratio"))
center_crop = jax.jit(augment.center_crop_resize, static_argnames=("size", "crop_fraction"))
jitter = jax.jit(augment.color_jitter, static_argnames="strength")
rand_aug = jax.jit(augment.rand_augment, static_argnames=("num_ops", "ops"))
erasing = jax.jit(augment.random_erasing, static_argnames="mode")
cutmix = jax.jit(augment.cutmix)
mix = jax.jit(augment.mixup_cutmix, static_argnames=("mixup_alpha", "cutmix_alpha"))
warp = jax.jit(augment.affine_warp)
op = jax.jit(augment.rand_augment_op, static_argnames="name")


def images(seed: int = 0, shape=(B, H, W, 3)) -> jax.Array:
    return jnp.asarray(np.random.default_rng(seed).random(shape, np.float32))


def key(seed: int) -> jax.Array:
    return jax.random.key(seed)


def shifted(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """image moved down dy, right dx, zeros shifted in."""
    out = np.zeros_like(image)
    h, w = image.shape[:2]
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[
        max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)
    ]
    return out


TRAIN_FNS = {
    "crop_flip": (partial(crop_flip, pad=4), H),
    "resized_crop": (partial(resized_crop, size=12), 12),
    "color_jitter": (partial(jitter, strength=0.4), H),
    "rand_augment": (rand_aug, H),
    "erasing": (partial(erasing, prob=0.5), H),
}


@pytest.mark.parametrize("name", list(TRAIN_FNS))
def test_shape_dtype_range_and_key_determinism(name):
    fn, size = TRAIN_FNS[name]
    x = images()
    a, again, b = fn(key(1), x), fn(key(1), x), fn(key(2), x)
    chex.assert_shape(a, (B, size, size, 3))
    assert a.dtype == jnp.float32
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    chex.assert_trees_all_equal(a, again)
    assert not np.array_equal(a, b)


def test_grayscale_images_work():
    x = images(shape=(B, H, W, 1))
    # The ops that treat channels specially (luma, per-channel levels, per-channel fill).
    ops = ("ColorIncreasing", "ContrastIncreasing", "Equalize", "AutoContrast", "Rotate")
    for fn in (partial(rand_aug, num_ops=1, ops=ops, prob=1.0), partial(jitter, strength=0.4)):
        y = fn(key(3), x)
        chex.assert_shape(y, x.shape)
        assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


def test_random_crop_flip_identity_shifts_and_mirrors():
    x = images()
    chex.assert_trees_all_equal(crop_flip(key(0), x, pad=0, flip=False), x)
    xs, seen = np.asarray(x), set()
    out = np.asarray(crop_flip(key(1), x, pad=3, flip=False))
    for src, dst in zip(xs, out):
        matches = [(dy, dx) for dy in range(-3, 4) for dx in range(-3, 4)
                   if np.array_equal(dst, shifted(src, dy, dx))]  # fmt: skip
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) > 1
    flipped = np.asarray(crop_flip(key(2), x, pad=0, flip=True))
    is_mirror = [np.array_equal(f, s[:, ::-1]) for f, s in zip(flipped, xs)]
    is_same = [np.array_equal(f, s) for f, s in zip(flipped, xs)]
    assert all(m != s for m, s in zip(is_mirror, is_same)) and 0 < sum(is_mirror) < B


def test_random_resized_crop_full_box_is_identity_or_mirror_and_constants_stay():
    x = images()
    full = np.asarray(resized_crop(key(0), x, H, scale=(1, 1), ratio=(1, 1)))
    for f, s in zip(full, np.asarray(x)):
        assert np.allclose(f, s, atol=1e-6) or np.allclose(f, s[:, ::-1], atol=1e-6)
    const = jnp.full((B, H, W, 3), 0.3)
    np.testing.assert_allclose(resized_crop(key(1), const, 12), 0.3, atol=1e-6)
    box = jax.jit(augment._resample_box, static_argnums=(5, 6))
    crop = box(x[0], 4, 2, 6, 6, 6, "linear")  # the 6 x 6 box at (4, 2), scale 1: exact
    np.testing.assert_allclose(crop, x[0, 4:10, 2:8], atol=1e-6)
    # 2x downscale of a ramp (antialiased, symmetric kernel): the ramp at the output centres.
    ramp = 0.01 * np.arange(16)[:, None, None] + 0.02 * np.arange(16)[None, :, None]
    half = box(
        jnp.asarray(np.broadcast_to(ramp, (16, 16, 3)), jnp.float32), 4, 2, 8, 8, 4, "linear"
    )
    centres = 2 * np.arange(4) + 0.5  # output centre i + 0.5 -> input index 2 (i + 0.5) - 0.5
    expected = 0.01 * (4 + centres)[:, None] + 0.02 * (2 + centres)[None, :]
    np.testing.assert_allclose(half[..., 0], expected, atol=1e-5)


def test_crop_box_sampler_respects_area_aspect_and_image():
    keys = jax.random.split(key(0), 2000)
    sample = jax.jit(
        jax.vmap(lambda k: augment._sample_box_size(k, 32, 24, (0.08, 1.0), (-0.3, 0.3)))
    )
    h, w = (np.asarray(v) for v in sample(keys))
    assert (h >= 1).all() and (h <= 32).all() and (w >= 1).all() and (w <= 24).all()
    area = h * w / (32 * 24)
    assert area.min() < 0.1 and area.max() > 0.9
    # Aspect within the range up to the rounding of each side (+-0.5 px).
    assert (np.log((w + 0.5) / np.maximum(h - 0.5, 0.5)) >= -0.3).all()
    assert (np.log(np.maximum(w - 0.5, 0.5) / (h + 0.5)) <= 0.3).all()


def test_center_crop_resize_constant_and_exact_centre_crop():
    const = jnp.full((2, 20, 28, 3), 0.7)
    np.testing.assert_allclose(center_crop(const, 12), 0.7, atol=1e-6)
    x = images(shape=(2, 32, 32, 3))
    crop = center_crop(x, 24, crop_fraction=0.75)  # 24/32 at scale 1
    chex.assert_trees_all_close(crop, x[:, 4:28, 4:28], atol=1e-6)


def test_color_jitter_factors_on_gray_constant_images():
    np.testing.assert_allclose(jitter(key(0), images(), 0.0), images(), atol=1e-6)
    # A gray constant image: contrast and saturation are no-ops; brightness scales it.
    out = np.asarray(jitter(key(1), jnp.full((64, 4, 4, 3), 0.5), 0.4))
    assert np.ptp(out.reshape(64, -1), axis=1).max() < 1e-6
    factor = out[:, 0, 0, 0] / 0.5
    assert factor.min() >= 0.6 - 1e-6 and factor.max() <= 1.4 + 1e-6 and factor.std() > 0.1


def test_rand_augment_layers_probability_and_magnitude_sampling():
    x = images(shape=(256, 2, 2, 1))
    invert = partial(rand_aug, ops=("Invert",))
    chex.assert_trees_all_close(invert(key(0), x, num_ops=1, prob=1.0), 1 - x, atol=1e-6)
    chex.assert_trees_all_close(invert(key(0), x, num_ops=2, prob=1.0), x, atol=1e-6)
    chex.assert_trees_all_equal(invert(key(0), x, num_ops=1, prob=0.0), x)
    inverted = np.asarray(invert(key(1), x, num_ops=1)) != np.asarray(x)
    assert 0.4 < inverted.all(axis=(1, 2, 3)).mean() < 0.6  # applied with probability 0.5
    # Brightness on a 0.5 image reveals the sampled magnitude: 0.5 (1 +- 0.9 m / 10).
    gray = jnp.full((512, 4, 4, 1), 0.5)
    bright = partial(rand_aug, ops=("BrightnessIncreasing",), num_ops=1, prob=1.0)
    signed = (np.asarray(bright(key(2), gray, magnitude_std=0.0))[:, 0, 0, 0] / 0.5 - 1) / 0.09
    np.testing.assert_allclose(np.abs(signed), 9.0, atol=1e-4)
    assert 0.4 < (signed > 0).mean() < 0.6  # random sign
    m = np.abs(np.asarray(bright(key(3), gray))[:, 0, 0, 0] / 0.5 - 1) / 0.09
    assert m.max() <= 10 + 1e-4 and (m > 10 - 1e-4).mean() > 0.01  # clipped at max_magnitude
    assert abs(np.median(m) - 9.0) < 0.1 and 0.35 < m[m < 9.9].std() < 0.5
    uniform = np.abs(np.asarray(bright(key(4), gray, magnitude_std=np.inf))[:, 0, 0, 0] - 0.5)
    assert uniform.max() < 0.5 * 0.9 * 0.9 + 1e-6 and uniform.min() < 0.05  # U(0, 9)


def test_rand_augment_ops_identity_at_magnitude_zero():
    x = images(shape=(512, 4, 4, 1))
    bright = partial(rand_aug, ops=("BrightnessIncreasing",), num_ops=1, prob=1.0)
    zero = bright(key(0), x, magnitude=0.0, magnitude_std=0.0)
    chex.assert_trees_all_close(zero, x, atol=1e-6)
    x = images(shape=(1, 20, 24, 3))[0]  # the shape of the PIL tests: no new compilations
    for name in ("Rotate", "SolarizeIncreasing", "SolarizeAdd", "ColorIncreasing",
                 "ContrastIncreasing", "BrightnessIncreasing", "SharpnessIncreasing",
                 "ShearX", "ShearY", "TranslateXRel", "TranslateYRel"):  # fmt: skip
        for negate in (False, True):
            np.testing.assert_allclose(op(x, name, 0.0, negate, 0.5), x, atol=1e-6, err_msg=name)


def test_rand_augment_pixel_ops_match_pil():
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
    img, x = Image.fromarray(u8), jnp.asarray(u8, jnp.float32) / 255
    solarize_add = img.point([min(255, i + 55) if i < 128 else i for i in range(256)] * 3)
    f = 1 + 0.9 * 0.7
    cases = {  # (op, magnitude, negate) -> PIL result; m=5: 2 bits, threshold 128, add 55
        ("AutoContrast", 0.0, False): ImageOps.autocontrast(img),
        ("Equalize", 0.0, False): ImageOps.equalize(img),
        ("Invert", 0.0, False): ImageOps.invert(img),
        ("PosterizeIncreasing", 5.0, False): ImageOps.posterize(img, 2),
        ("SolarizeIncreasing", 5.0, False): ImageOps.solarize(img, 128),
        ("SolarizeAdd", 5.0, False): solarize_add,
        ("ColorIncreasing", 7.0, False): ImageEnhance.Color(img).enhance(f),
        ("ContrastIncreasing", 7.0, True): ImageEnhance.Contrast(img).enhance(2 - f),
        ("BrightnessIncreasing", 7.0, False): ImageEnhance.Brightness(img).enhance(f),
        ("SharpnessIncreasing", 7.0, True): ImageEnhance.Sharpness(img).enhance(2 - f),
    }
    exact = {"Equalize", "Invert", "PosterizeIncreasing", "SolarizeIncreasing", "SolarizeAdd"}
    for (name, m, neg), ref in cases.items():
        mine = np.asarray(op(x, name, m, neg)) * 255
        # PIL truncates to 8 bits where these float ops do not: within 1.5 levels.
        tol = 1e-3 if name in exact else 1.5
        np.testing.assert_allclose(mine, np.asarray(ref, np.float64), atol=tol, err_msg=name)


def test_rand_augment_geometric_ops_match_pil_away_from_the_fill():
    yy, xx = np.mgrid[0:20, 0:24]
    u8 = np.stack([xx * 9, yy * 11, xx * 5 + yy * 6], -1).astype(np.uint8)  # smooth ramps
    img, x = Image.fromarray(u8), jnp.asarray(u8, jnp.float32) / 255
    kw = {"resample": Image.BILINEAR}
    pil = {  # magnitude 7: 21 deg, shear 0.21, translate 0.315 of the side
        ("Rotate", True): lambda c: img.rotate(-21, fillcolor=c, **kw),
        ("ShearX", False): lambda c: img.transform(img.size, 0, (1, 0.21, 0, 0, 1, 0),
                                                   fillcolor=c, **kw),
        ("ShearY", True): lambda c: img.transform(img.size, 0, (1, 0, 0, -0.21, 1, 0),
                                                  fillcolor=c, **kw),
        ("TranslateXRel", False): lambda c: img.transform(img.size, 0, (1, 0, 0.315 * 24, 0, 1, 0),
                                                          fillcolor=c, **kw),
        ("TranslateYRel", True): lambda c: img.transform(img.size, 0, (1, 0, 0, 0, 1, -6.3),
                                                         fillcolor=c, **kw),
    }  # fmt: skip
    for (name, neg), transform in pil.items():
        ref0, ref1 = (np.asarray(transform(c), np.float64) for c in ((0, 0, 0), (255, 255, 255)))
        mine0, mine1 = (np.asarray(op(x, name, 7.0, neg, fill)) * 255 for fill in (0.0, 1.0))
        interior = (ref0 == ref1) & (np.abs(mine0 - mine1) < 1e-3)  # fill plays no part
        assert interior.mean() > 0.6, name
        np.testing.assert_allclose(mine0[interior], ref0[interior], atol=1.01, err_msg=name)


def test_affine_warp_rot90_translation_and_constant_fill():
    x = np.asarray(images(shape=(1, 9, 9, 3))[0])
    rotation = jax.jit(augment.rotation_matrix, static_argnums=(1, 2))
    rot = warp(x, rotation(90.0, 9, 9), 0.5)
    np.testing.assert_allclose(rot, np.rot90(x, 1, axes=(0, 1)), atol=1e-5)
    shift = warp(x, np.array([[1, 0, 2], [0, 1, -1]], np.float32), 0.0)
    np.testing.assert_allclose(shift, shifted(x, 1, -2), atol=1e-6)  # reads x + 2, y - 1
    const = jnp.full((20, 24, 3), 0.25)  # the shape of the PIL test: no new compilations
    for name in ("Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel"):
        np.testing.assert_allclose(op(const, name, 10.0, False, 0.25), 0.25, atol=1e-6)


def test_posterize_and_solarize_level_semantics():
    levels = jnp.arange(256, dtype=jnp.float32).reshape(16, 16, 1) / 255
    q = np.arange(256).reshape(16, 16, 1)

    def run(name, m):
        return np.rint(np.asarray(op(levels, name, m)) * 255).astype(int)

    np.testing.assert_array_equal(run("PosterizeIncreasing", 0.0), q & 0xF0)  # keeps 4 bits
    np.testing.assert_array_equal(run("PosterizeIncreasing", 7.6), q & 0x80)  # 4 - int(3.04)
    np.testing.assert_array_equal(run("PosterizeIncreasing", 10.0), 0 * q)
    np.testing.assert_array_equal(run("SolarizeIncreasing", 0.0), q)  # threshold 256
    np.testing.assert_array_equal(run("SolarizeIncreasing", 9.0), np.where(q < 26, q, 255 - q))
    np.testing.assert_array_equal(run("SolarizeAdd", 10.0), np.where(q < 128, q + 110, q))


def test_random_erasing_identity_and_one_box_per_image():
    x = images(shape=(64, 24, 24, 3))
    chex.assert_trees_all_equal(erasing(key(0), x, prob=0.0), x)
    out = np.asarray(erasing(key(1), x, prob=1.0))
    changed = np.any(out != np.asarray(x), axis=-1)
    fractions = []
    for c in changed:
        rows, cols = np.nonzero(c.any(1))[0], np.nonzero(c.any(0))[0]
        h, w = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
        assert c[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].all() and c.sum() == h * w
        # Sides are rounded from sqrt(area * r): area in [0.02, 1/3] up to half a pixel each.
        assert (h + 0.5) * (w + 0.5) >= 0.02 * 576 and (h - 0.5) * (w - 0.5) <= 576 / 3
        assert (h + 0.5) / max(w - 0.5, 0.5) >= 0.3 - 1e-6 and (h - 0.5) / (w + 0.5) <= 1 / 0.3
        fractions.append(h * w / 576)
    assert min(fractions) < 0.08 and max(fractions) > 0.25
    half = np.asarray(erasing(key(2), x, prob=0.5)) != np.asarray(x)
    assert 0.3 < half.any(axis=(1, 2, 3)).mean() < 0.7
    const = erasing(key(3), x, prob=1.0, mode="const")
    assert float(const.min()) == 0.0 and float(jnp.mean(const == 0.0)) > 0.02
    rand = np.asarray(erasing(key(4), x, prob=1.0, mode="rand"))
    boxes = np.any(rand != np.asarray(x), axis=-1)
    assert all(len(np.unique(r[c], axis=0)) == 1 for r, c in zip(rand, boxes))


def distinct_constants() -> tuple[np.ndarray, np.ndarray]:
    """Example b is the constant (b + 1) / 10, its target one-hot b."""
    values = np.arange(1, B + 1, dtype=np.float32)[:, None, None, None] / 10
    return np.broadcast_to(values, (B, H, W, 3)), np.eye(B, dtype=np.float32)


def test_cutmix_pastes_a_box_of_area_one_minus_lam():
    x, t = distinct_constants()
    corrected = []
    for seed, lam_in in enumerate([0.05, 0.3, 0.5, 0.7, 0.9, 0.97, 0.99, 1.0]):
        mx, mt, lam = (np.asarray(v) for v in cutmix(key(seed), x, t, lam_in))
        lam = float(lam)
        partner, own = (mx == x[::-1])[..., 0], (mx == x)[..., 0]
        assert (partner ^ own).all()  # every pixel from exactly one of the two
        assert (partner == partner[0]).all()  # one box for the whole batch
        np.testing.assert_allclose(partner.mean(axis=(1, 2)), 1 - lam, atol=1e-6)
        np.testing.assert_allclose(mt, lam * t + (1 - lam) * t[::-1], atol=1e-6)
        np.testing.assert_allclose(mt.sum(-1), 1.0, atol=1e-6)
        assert lam >= lam_in - 1e-6  # the box is at most (1 - lam) of the image, clipped
        corrected.append(lam)
    assert corrected[-1] == 1.0 and min(corrected) < 0.8  # clipping shrinks boxes


def test_mixup_cutmix_switches_and_mixes_convexly_and_alphas_zero_is_identity():
    x, t = distinct_constants()
    mx, mt = augment.mixup(x, t, 0.3)
    np.testing.assert_allclose(mx, 0.3 * x + 0.7 * x[::-1], atol=1e-6)
    np.testing.assert_allclose(mt, 0.3 * t + 0.7 * t[::-1], atol=1e-6)
    ix, it, lam = augment.mixup_cutmix(key(0), x, t, mixup_alpha=0.0, cutmix_alpha=0.0)
    assert ix is x and it is t and float(lam) == 1.0
    kinds = []
    for seed in range(10):  # both alphas, switch_prob 0.5: a box from two images or a blend
        mx, mt, lam = (np.asarray(v) for v in mix(key(seed), x, t, 0.8, 1.0))
        boxed = bool(np.isin(mx, x).all())
        if not boxed:
            np.testing.assert_allclose(mx, lam * x + (1 - lam) * x[::-1], atol=1e-6)
        np.testing.assert_allclose(mt, lam * t + (1 - lam) * t[::-1], atol=1e-6)
        assert 0.0 <= lam <= 1.0
        kinds.append(boxed)
    assert 0 < sum(kinds) < len(kinds)


def test_smooth_labels_and_normalize():
    y = augment.smooth_labels(jnp.array([2, 0]), 4, 0.1)
    expected = np.full((2, 4), 0.025, np.float32)
    expected[0, 2] = expected[1, 0] = 0.925
    chex.assert_trees_all_close(y, jnp.asarray(expected))
    chex.assert_trees_all_close(augment.smooth_labels(jnp.array([1]), 3, 0.0), jnp.eye(3)[1:2])
    x = images()
    n = augment.normalize(x, augment.IMAGENET_MEAN, augment.IMAGENET_STD)
    np.testing.assert_allclose(n[..., 1], (x[..., 1] - 0.456) / 0.224, rtol=1e-5)
    back = augment.denormalize(n, augment.IMAGENET_MEAN, augment.IMAGENET_STD)
    chex.assert_trees_all_close(back, x, atol=1e-6)
    assert math.isclose(augment.CIFAR10_MEAN[0], 0.4914)
