"""The report's image figures, drawn from a finished SuiT run: its superpixels over test
images, and the CLS token's last-layer attention painted on them (what the classifier
reads from each superpixel)."""

from __future__ import annotations

import os

import jax.numpy as jnp
import numpy as np
from flax import nnx

from experiments import report_utils
from framework import config as config_lib, trainer as trainer_lib

NUM_IMAGES = 6


def boundaries(labels_HW: np.ndarray) -> np.ndarray:
    """bool [H, W]: pixels whose right or lower neighbour has another label."""
    edge = np.zeros(labels_HW.shape, bool)
    edge[:, :-1] |= labels_HW[:, :-1] != labels_HW[:, 1:]
    edge[:-1, :] |= labels_HW[:-1, :] != labels_HW[1:, :]
    return edge


def _upsample(x_HW: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour upsampling of a feature-grid map to the image's side."""
    f = size // x_HW.shape[0]
    return np.repeat(np.repeat(x_HW, f, axis=0), f, axis=1)


def model_views(run_dir: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(images [N,H,W,C] in [0,1], label maps [N,h,w], CLS attention per pixel [N,h,w],
    titles) for the first test images, from the run's newest checkpoint."""
    config = config_lib.saved_config(run_dir)
    with config.unlocked():
        config.evals = {}  # only the model and its data are needed
    trainer = trainer_lib.Trainer(config, run_dir)
    task = trainer.task
    variables, _ = trainer.restore_variables("latest")
    model = trainer.merge(variables)
    test = task.eval_set("test")
    idx = np.linspace(0, len(test) - 1, min(NUM_IMAGES, len(test))).astype(int)  # all classes
    raw = np.stack([test[int(i)]["image"] for i in idx])
    names = [test.class_names[test[int(i)]["label"]] for i in idx]
    x = jnp.asarray(raw, jnp.float32) / 255.0
    if x.shape[1] != task.model_config.image_size:
        from data import augment  # noqa: PLC0415

        x = augment.center_crop_resize(x, task.model_config.image_size)
    k = task.num_segments

    @nnx.jit
    def views(model, x):  # one compiled program rather than op-by-op dispatch
        labels = task.segments(x, k)
        attn_BK = model.cls_attention(task.normalize(x), labels, k)
        logits = model(task.normalize(x), labels, num_segments=k)
        return labels, attn_BK, jnp.argmax(logits, -1)

    labels, attn_BK, pred = views(model, x)
    pred = np.asarray(pred)
    labels = np.asarray(labels)
    attn = np.take_along_axis(np.asarray(attn_BK), labels.reshape(len(idx), -1), axis=1)
    titles = [f"{n} / pred {test.class_names[p]}" for n, p in zip(names, pred)]
    return np.asarray(x), labels, attn.reshape(labels.shape), titles


def draw(run_dir: str, out: str) -> None:
    """Writes superpixels.png and attention.png into `out`; small images are enlarged
    (nearest) first, so that boundaries are thin lines between pixels."""
    images, labels, attn, titles = model_views(run_dir)
    plt = report_utils.pyplot()
    n, size = len(images), images.shape[1]
    up = max(1, 128 // size)
    for name, painter in (("superpixels.png", _paint_boundaries), ("attention.png", _paint_attn)):
        fig, axes = plt.subplots(1, n, figsize=(1.9 * n, 2.2))
        for i, ax in enumerate(np.atleast_1d(axes)):
            image = _upsample(images[i], size * up)
            painter(ax, image, _upsample(labels[i], size * up), _upsample(attn[i], size * up))
            ax.set_title(titles[i], fontsize=6)
            ax.axis("off")
        fig.tight_layout()
        fig.savefig(os.path.join(out, name), dpi=120)
        plt.close(fig)


def _paint_boundaries(ax, image: np.ndarray, labels: np.ndarray, _attn) -> None:
    shown = image[..., :3] if image.shape[-1] >= 3 else np.repeat(image, 3, -1)
    shown = shown.copy()
    shown[boundaries(labels)] = (1.0, 0.0, 1.0)  # magenta: in no palette of ours
    ax.imshow(shown, interpolation="nearest")


def _paint_attn(ax, image: np.ndarray, labels: np.ndarray, attn: np.ndarray) -> None:
    gray = image.mean(-1)
    ax.imshow(gray, cmap="gray", interpolation="nearest")
    ax.imshow(attn, cmap="inferno", alpha=0.6, interpolation="nearest")
    edge = np.ma.masked_where(~boundaries(labels), np.ones(labels.shape))
    ax.imshow(edge, cmap="Greys", alpha=0.4, interpolation="nearest")
