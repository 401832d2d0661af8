"""Tasks that train a head on a Transformer: a per-position value model and a sequence
classifier. Both are the LM task with another model (models/heads.py) and another loss,
and both can start from an LM run: `train.init_from=LM_WORKDIR` with
`train.init_dont_load='value_head'` (or 'class_head') loads the backbone and leaves the
head fresh.

value    (task framework.tasks.value; the process/outcome reward model): JSONL lines
         {"prompt": str, "steps": [str, ...], "labels": [float in [0, 1], ...]}, one
         label per step (an outcome model: one step, the whole solution). Tokens are
         [BOS] + prompt + steps (each tokenised on its own, so a step ends on a token);
         each step's label is a soft target at its last token, trained with binary
         cross-entropy on the value head's logit there.
classify (task framework.tasks.classify; e.g. hallucination detectors): JSONL lines
         {"text": str, "label": int in [0, data.num_classes)}; the head mean-pools the
         hidden states of the text's tokens; softmax cross-entropy.

Rows are one example each (right-padded to data.seq_len); an example longer than that
is an error naming its line.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from data import examples
from framework import config as config_lib
from framework.tasks import lm
from models import heads


def _rows(n: int, seq_len: int, pad_id: int) -> dict[str, np.ndarray]:
    rows = {k: np.zeros((n, seq_len), np.int32) for k in ("inputs", "positions")}
    rows["inputs"][:] = pad_id
    rows["positions"][:] = np.arange(seq_len)
    rows["mask"] = np.zeros((n, seq_len), np.float32)
    return rows


def _too_long(where: str, n: int, seq_len: int) -> examples.DataError:
    return examples.DataError(
        f"{where}: the example has {n} tokens, more than data.seq_len={seq_len}; raise "
        "data.seq_len or shorten it."
    )


def load_value_rows(path: str, tokenizer, seq_len: int) -> dict[str, np.ndarray]:
    """Rows of a value JSONL file: inputs, positions, mask (1 on real tokens), and
    value_mask / value_target (1 and the label at each step's last token)."""
    records = examples.read_records(path)
    rows = _rows(len(records), seq_len, tokenizer.pad_id)
    rows["value_mask"] = np.zeros((len(records), seq_len), np.float32)
    rows["value_target"] = np.zeros((len(records), seq_len), np.float32)
    for r, (where, record) in enumerate(records):
        prompt = examples.field(record, "prompt", (str,), where)
        steps = examples.field(record, "steps", (list,), where)
        labels = examples.field(record, "labels", (list,), where)
        if not steps or len(steps) != len(labels):
            raise examples.DataError(
                f"{where}: 'steps' and 'labels' must be non-empty lists of the same length, "
                f"got {len(steps)} and {len(labels)}."
            )
        tokens = [tokenizer.bos_id, *tokenizer.encode(prompt)]
        for i, (step, label) in enumerate(zip(steps, labels)):
            ids = list(tokenizer.encode(step)) if isinstance(step, str) else []
            ok = isinstance(label, int | float) and not isinstance(label, bool)
            if not ids or not ok or not 0 <= label <= 1:
                raise examples.DataError(
                    f"{where}: step {i} must be non-empty text with a label in [0, 1], got "
                    f"{str(step)[:30]!r} and {label!r}."
                )
            tokens += ids
            if len(tokens) <= seq_len:
                rows["value_mask"][r, len(tokens) - 1] = 1.0
                rows["value_target"][r, len(tokens) - 1] = float(label)
        if len(tokens) > seq_len:
            raise _too_long(where, len(tokens), seq_len)
        rows["inputs"][r, : len(tokens)] = tokens
        rows["mask"][r, : len(tokens)] = 1.0
    return rows


def load_class_rows(path: str, tokenizer, seq_len: int, num_classes: int) -> dict:
    """Rows of a classification JSONL file: inputs, positions, mask, label [N]."""
    records = examples.read_records(path)
    rows = _rows(len(records), seq_len, tokenizer.pad_id)
    rows["label"] = np.zeros((len(records),), np.int32)
    for r, (where, record) in enumerate(records):
        text = examples.field(record, "text", (str,), where)
        label = examples.field(record, "label", (int,), where)
        if not 0 <= label < num_classes:
            raise examples.DataError(
                f"{where}: 'label' {label} is outside [0, data.num_classes={num_classes})."
            )
        tokens = [tokenizer.bos_id, *tokenizer.encode(text)]
        if len(tokens) > seq_len:
            raise _too_long(where, len(tokens), seq_len)
        rows["inputs"][r, : len(tokens)] = tokens
        rows["mask"][r, : len(tokens)] = 1.0
        rows["label"][r] = label
    return rows


class _HeadTask(lm.Task):
    """The LM task's model config, tokenizer and batching with another model and loss."""

    items_name = "examples"

    def _load_data(self, tokenizer):
        d = self.config.data
        try:
            rows = self._load_rows(d.path, tokenizer, d.seq_len)
            return examples.split_rows(rows, d.val_fraction, repr(d.path))
        except examples.DataError as e:
            raise config_lib.ConfigError(str(e)) from None

    def items_per_example(self) -> int:
        return 1

    def _encode_kwargs(self, batch, rng) -> dict:
        return dict(
            positions_BT=batch["positions"],
            deterministic=rng is None,
            rngs=None if rng is None else nnx.Rngs(dropout=rng),
        )


def value_default_config() -> ml_collections.ConfigDict:
    """The LM task's config with data.format 'value' (data.path: a value JSONL file)."""
    c = lm.default_config()
    with c.unlocked():
        c.task = "framework.tasks.value"
        c.data.format = "value"
    return c


def classify_default_config() -> ml_collections.ConfigDict:
    """The LM task's config with data.format 'classify' and data.num_classes."""
    c = lm.default_config()
    with c.unlocked():
        c.task = "framework.tasks.classify"
        c.data.format = "classify"
        c.data.num_classes = 2
    return c


class ValueTask(_HeadTask):
    """Binary cross-entropy of the value head at each step's last token."""

    formats = ("value",)

    def _load_rows(self, path, tokenizer, seq_len):
        return load_value_rows(path, tokenizer, seq_len)

    def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
        return heads.ValueLM(self.model_config, rngs=rngs)

    def loss(self, model, batch, rng):
        logits_BT = model.values(batch["inputs"], **self._encode_kwargs(batch, rng))
        w_BT, y_BT = batch["value_mask"], batch["value_target"]
        count = jnp.maximum(w_BT.sum(), 1.0)
        bce = (optax.sigmoid_binary_cross_entropy(logits_BT, y_BT) * w_BT).sum() / count
        agree = ((logits_BT > 0) == (y_BT > 0.5)).astype(jnp.float32)
        value = jax.nn.sigmoid(logits_BT)
        metrics = {
            "loss": bce,
            "accuracy": (agree * w_BT).sum() / count,
            "value_mae": (jnp.abs(value - y_BT) * w_BT).sum() / count,
            "_weight": w_BT.sum(),
        }
        return bce, metrics


class ClassifyTask(_HeadTask):
    """Softmax cross-entropy of the pooled classifier head."""

    formats = ("classify",)

    def _load_rows(self, path, tokenizer, seq_len):
        return load_class_rows(path, tokenizer, seq_len, int(self.config.data.num_classes))

    def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
        return heads.ClassifierLM(self.model_config, int(self.config.data.num_classes), rngs=rngs)

    def loss(self, model, batch, rng):
        logits_BC = model.classify(
            batch["inputs"], batch["mask"], **self._encode_kwargs(batch, rng)
        )
        real_B = (batch["mask"].sum(1) > 0).astype(jnp.float32)  # padding rows: no loss
        ce_B = optax.softmax_cross_entropy_with_integer_labels(logits_BC, batch["label"])
        count = jnp.maximum(real_B.sum(), 1.0)
        correct_B = (jnp.argmax(logits_BC, -1) == batch["label"]).astype(jnp.float32)
        metrics = {
            "loss": (ce_B * real_B).sum() / count,
            "accuracy": (correct_B * real_B).sum() / count,
            "_weight": real_B.sum(),
        }
        return metrics["loss"], metrics
