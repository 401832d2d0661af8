"""Language modelling: next-token cross-entropy with optional z-loss, a loss mask and
per-example weights, over packed text, prompt/completion examples or token files
(`data.format`, data/text.py and data/examples.py); examples with an 'advantage' train
with the policy-gradient objective instead."""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from flax import nnx

from data import examples, sources, streaming, text as text_data, tokenizers
from framework import config as config_lib
from framework.tasks import base
from models import transformer

FORMATS = ("text", "examples", "tokens")


def default_config() -> ml_collections.ConfigDict:
    """base_config() with the LM task's model, data and loss sections; locked."""
    c = config_lib.base_config()
    c.task = "framework.tasks.lm"
    c.model = ml_collections.ConfigDict(dataclasses.asdict(transformer.TransformerConfig()))
    c.data = ml_collections.ConfigDict(
        dict(
            # text: '' = the embedded corpus, else a .txt file or a folder of them;
            # examples: a JSONL file; tokens: a .npy file or a folder of them
            path="",
            # Streaming text from disk instead (data/sources.py, data/streaming.py):
            # 'tfds:NAME[/CONFIG]:VERSION[@SPLIT]' or 'arrayrecord:GLOB'. val_source:
            # the validation documents ('' = the last val_fraction of source's).
            source="",
            val_source="",
            tfds_dir="",  # '' = $TFDS_DATA_DIR, else tfds's default
            text_field="text",  # the record field holding the document (tfds)
            num_workers=1,  # threads reading and tokenising documents
            format="text",  # text | examples | tokens (data/examples.py)
            pack_examples=True,  # examples: several per row (segment ids) or one per row
            tokens_vocab_size=0,  # tokens: the vocabulary the token files use (<= 65,536)
            val_path="",  # tokens: validation token files ('' = the last val_fraction)
            tokenizer="byte",  # byte | sentencepiece
            sentencepiece_model="",
            seq_len=128,
            # text files: every row is BOS + seq_len tokens cut from the stream (rows
            # start mid-document, their context only their own tokens), not packed rows
            bos_every_row=False,
            val_fraction=0.05,
            embedded_chars=1_000_000,
            # A module whose prepare(path, spec) writes data.path when it is missing,
            # from the string prepare_spec (e.g. 'data.arith': generated problems).
            prepare="",
            prepare_spec="",
        )
    )
    # kl_to: a reference run ('WORKDIR[:best|latest|STEP]') whose parameters the state
    # carries frozen; kl_coef * KL(policy || reference) over the loss-bearing tokens is
    # added to the objective (e.g. to keep a policy-gradient run near its start).
    # aux: coefficients of the model's auxiliary losses (Transformer(return_aux=True), e.g.
    # the MoE layers' load balance and router z-loss; ST-MoE's 1e-2 and 1e-3), added to
    # the objective; every auxiliary output is logged whether or not it has one.
    c.loss = ml_collections.ConfigDict(
        dict(z_loss=0.0, kl_to="", kl_coef=0.0, aux=dict(moe_balance=1e-2, moe_z=1e-3))
    )
    # attention_logits: log each layer's largest attention logit q.k/sqrt(d) as
    # 'attn_logit_max/<layer>' (and the max over layers as 'attn_logit_max').
    c.probes = ml_collections.ConfigDict(dict(attention_logits=False))
    # Printed (and saved to samples.txt) when training ends; no prompts, no samples.
    c.sample = ml_collections.ConfigDict(
        dict(prompts=(), max_new_tokens=80, temperature=0.8, top_k=0, seed=0)
    )
    c.evals = ml_collections.ConfigDict(
        dict(val=dict(kind="framework.evaluators", split="val", num_batches=0, batch_size=0))
    )
    return config_lib.lock(c)


def cross_entropy_loss(
    logits_BTV: jax.Array,
    targets_BT: jax.Array,
    mask_BT: jax.Array | None = None,
    weights_B: jax.Array | None = None,
    z_loss: float = 0.0,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Mean next-token cross-entropy (+ z_loss · log Z²) over weighted, unmasked tokens.

    Each token's weight is mask[b, t] · weights[b]; Z = sum_v exp(logit_v). Returns
    (objective, metrics) where metrics['loss'] is the cross-entropy alone, so runs
    with and without z-loss compare; 'log_z_mean'/'log_z_max' are over weighted tokens.
    """
    logits_BTV = logits_BTV.astype(jnp.float32)
    w_BT = jnp.ones(targets_BT.shape, jnp.float32)
    if mask_BT is not None:
        w_BT = w_BT * mask_BT.astype(jnp.float32)
    if weights_B is not None:
        w_BT = w_BT * weights_B.astype(jnp.float32)[:, None]
    denom = jnp.maximum(w_BT.sum(), 1e-9)
    log_z_BT = jax.nn.logsumexp(logits_BTV, axis=-1)
    target_logit_BT = jnp.take_along_axis(logits_BTV, targets_BT[..., None], axis=-1)[..., 0]
    ce = ((log_z_BT - target_logit_BT) * w_BT).sum() / denom
    zl = z_loss * (jnp.square(log_z_BT) * w_BT).sum() / denom
    correct_BT = (jnp.argmax(logits_BTV, axis=-1) == targets_BT).astype(jnp.float32)
    metrics = {
        "loss": ce,
        "z_loss": zl,
        "accuracy": (correct_BT * w_BT).sum() / denom,
        "log_z_mean": (log_z_BT * w_BT).sum() / denom,
        "log_z_max": jnp.max(jnp.where(w_BT > 0, log_z_BT, -jnp.inf)),
        "_weight": w_BT.sum(),
    }
    return ce + zl, metrics


def policy_gradient_loss(
    logits_BTV: jax.Array, targets_BT: jax.Array, advantage_BT: jax.Array, counted_BT: jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """-sum(advantage * log p(target)) / (number of counted tokens): REINFORCE with signed
    per-token advantages, normalised by the token count (never by the sum of the possibly
    negative advantages), so gradient accumulation weighted by '_weight' stays exact."""
    counted_BT = counted_BT.astype(jnp.float32)
    logp_BTV = jax.nn.log_softmax(logits_BTV.astype(jnp.float32), axis=-1)
    logp_BT = jnp.take_along_axis(logp_BTV, targets_BT[..., None], axis=-1)[..., 0]
    count = jnp.maximum(counted_BT.sum(), 1.0)
    objective = -(advantage_BT * logp_BT * counted_BT).sum() / count
    metrics = {
        "pg_objective": objective,
        "advantage_mean": (advantage_BT * counted_BT).sum() / count,
        "_weight": counted_BT.sum(),
    }
    return objective, metrics


def kl_divergence(
    logits_BTV: jax.Array, ref_logits_BTV: jax.Array, w_BT: jax.Array | None
) -> jax.Array:
    """Weighted mean over tokens of KL(p || q) = sum_v p_v (log p_v - log q_v), p the
    policy's next-token distribution and q the reference's (exact, over the vocabulary)."""
    logp_BTV = jax.nn.log_softmax(logits_BTV.astype(jnp.float32), axis=-1)
    logq_BTV = jax.nn.log_softmax(ref_logits_BTV.astype(jnp.float32), axis=-1)
    kl_BT = (jnp.exp(logp_BTV) * (logp_BTV - logq_BTV)).sum(-1)
    w_BT = jnp.ones(kl_BT.shape) if w_BT is None else w_BT.astype(jnp.float32)
    return (kl_BT * w_BT).sum() / jnp.maximum(w_BT.sum(), 1.0)


class Task(base.Task):
    """Decoder-only LM on text (the embedded corpus or files)."""

    items_name = "tokens"
    formats = FORMATS  # the data.format values this task reads
    # The loss reads config.loss/probes and the batch only; the data's origin enters
    # no program (its shapes do, through the batch).
    runtime_keys = (
        "data.source",
        "data.val_source",
        "data.tfds_dir",
        "data.text_field",
        "data.num_workers",
        "data.path",
        "data.prepare",
        "data.prepare_spec",
        "data.embedded_chars",
        "data.val_fraction",
        "data.val_path",
    )

    init_sections = ("model",)  # build_model reads config.model only
    data_free_dry_run = True  # Task(config, abstract=True): shapes without data

    def __init__(self, config: ml_collections.ConfigDict, abstract: bool = False):
        super().__init__(config)
        config_lib.check_dataclass_keys(transformer.TransformerConfig, config.model, "model")
        try:
            self.model_config = transformer.TransformerConfig(**config.model.to_dict())
        except ValueError as e:
            raise config_lib.ConfigError(f"model: {e}") from None
        d = config.data
        if d.format not in self.formats:
            raise config_lib.ConfigError(
                f"data.format={d.format!r} is not one of {', '.join(self.formats)}."
            )
        if abstract:  # a dry run: no tokenizer, no data (batch_spec gives the shapes)
            self.tokenizer = self.data = None
            return
        tokenizer = tokenizers.make_tokenizer(d.tokenizer, d.sentencepiece_model)
        vocab = d.tokens_vocab_size if d.format == "tokens" else tokenizer.vocab_size
        if d.format == "tokens" and vocab > self.model_config.vocab_size:
            raise config_lib.ConfigError(
                f"model.vocab_size={self.model_config.vocab_size} is smaller than the token "
                f"files' vocabulary data.tokens_vocab_size={vocab}; raise model.vocab_size."
            )
        if d.format != "tokens" and tokenizer.vocab_size > self.model_config.vocab_size:
            raise config_lib.ConfigError(
                f"model.vocab_size={self.model_config.vocab_size} is smaller than the "
                f"{d.tokenizer} tokenizer's {tokenizer.vocab_size}; raise model.vocab_size."
            )
        if d.seq_len > self.model_config.max_len:
            raise config_lib.ConfigError(
                f"data.seq_len={d.seq_len} exceeds model.max_len={self.model_config.max_len}."
            )
        self.data = self._load_data(tokenizer)
        self.tokenizer = tokenizer

    def _load_data(self, tokenizer: tokenizers.Tokenizer) -> Any:
        """Train/val rows for data.format (packed text, examples or token files)."""
        d, seed = self.config.data, self.config.seed
        if d.bos_every_row and (d.source or d.format != "text"):
            raise config_lib.ConfigError(
                "data.bos_every_row applies to text files (data.path, format 'text'); "
                f"unset it for data.source={d.source!r}, data.format={d.format!r}."
            )
        if d.prepare:
            module = config_lib.load_module(d.prepare, "data.prepare")
            try:
                module.prepare(d.path, d.prepare_spec)
            except ValueError as e:  # a bad spec, or a file made from another one
                raise config_lib.ConfigError(f"data.prepare={d.prepare!r}: {e}") from None
        try:
            if d.source:
                return self._open_stream(tokenizer)
            if d.format == "examples":
                return examples.load_examples(
                    d.path,
                    tokenizer,
                    d.seq_len,
                    packed=d.pack_examples,
                    val_fraction=d.val_fraction,
                )
            if d.format == "tokens":
                return examples.load_tokens(
                    d.path,
                    d.tokens_vocab_size,
                    d.seq_len,
                    val_fraction=d.val_fraction,
                    val_path=d.val_path,
                )
        except examples.DataError as e:
            raise config_lib.ConfigError(str(e)) from None
        return text_data.load_lm_data(
            d.path,
            tokenizer=tokenizer,
            seq_len=d.seq_len,
            val_fraction=d.val_fraction,
            embedded_chars=d.embedded_chars,
            seed=seed,
            bos_every_row=d.bos_every_row,
        )

    def _open_stream(self, tokenizer: tokenizers.Tokenizer) -> streaming.StreamingData:
        """Streaming documents of data.source (and data.val_source)."""
        d = self.config.data
        if d.format != "text" or d.path:
            raise config_lib.ConfigError(
                f"data.source={d.source!r} streams text: leave data.path empty and "
                f"data.format='text' (got path={d.path!r}, format={d.format!r})."
            )
        opened = functools.partial(
            sources.open_documents, data_dir=d.tfds_dir, text_field=d.text_field
        )
        train = opened(d.source, split="train")
        if d.val_source:
            val = opened(d.val_source, split="validation")
            train_range, val_range = (0, len(train)), (0, len(val))
        else:
            val = train
            train_range, val_range = streaming.split_documents(len(train), d.val_fraction)
        return streaming.StreamingData(
            train, train_range, val, val_range, tokenizer, d.seq_len, max(1, d.num_workers)
        )

    def batch_spec(self, batch_size: int) -> dict[str, tuple[tuple[int, ...], Any]] | None:
        """Shapes and dtypes of a batch without reading data (packed text), else None."""
        if self.config.data.format != "text":
            return None
        shape = (batch_size, self.config.data.seq_len)
        return {
            "inputs": (shape, np.int32),
            "targets": (shape, np.int32),
            "mask": (shape, np.float32),
        }

    def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
        """The transformer of config.model."""
        return transformer.Transformer(self.model_config, rngs=rngs)

    @property
    def reference_run(self) -> str:
        """The run the trainer carries as a frozen reference (loss.kl_to), or ''."""
        return self.config.loss.get("kl_to", "")

    def loss(self, model, batch, rng, reference=None):
        """Cross-entropy (+ z-loss) of the model's next-token predictions (+ probes); with
        an 'advantage' per token, the policy-gradient objective (policy_gradient_loss);
        with a reference model (loss.kl_to), + kl_coef * KL(policy || reference); + the
        model's auxiliary losses times their loss.aux coefficients (MoE layers)."""
        probe = self.config.probes.attention_logits
        logits_BTV, probes = model(
            batch["inputs"],
            positions_BT=batch.get("positions"),
            segment_ids_BT=batch.get("segment_ids"),
            deterministic=rng is None,
            rngs=None if rng is None else nnx.Rngs(dropout=rng),
            return_probes=probe,
            return_aux=True,
        )
        objective, metrics = cross_entropy_loss(
            logits_BTV,
            batch["targets"],
            batch.get("mask"),
            batch.get("weights"),
            z_loss=self.config.loss.z_loss,
        )
        if "advantage" in batch:
            objective, pg_metrics = policy_gradient_loss(
                logits_BTV, batch["targets"], batch["advantage"], batch["mask"] > 0
            )
            metrics.update(pg_metrics)
        if reference is not None:
            ref_logits_BTV = reference(
                batch["inputs"],
                positions_BT=batch.get("positions"),
                segment_ids_BT=batch.get("segment_ids"),
            )
            # weighted like the objective, so accumulation by '_weight' stays exact
            w_BT = batch.get("mask")
            if "advantage" in batch:
                w_BT = batch["mask"] > 0
            kl = kl_divergence(logits_BTV, ref_logits_BTV, w_BT)
            objective = objective + self.config.loss.kl_coef * kl
            metrics["kl"] = kl
        coefficients = self.config.loss.get("aux", {})
        for name, value in probes.pop("aux").items():  # e.g. the MoE layers' losses
            metrics[name] = value
            if coefficients.get(name, 0.0):
                objective = objective + coefficients[name] * value
        if probe:
            logit_max_L = probes["attn_logit_max"]
            metrics["attn_logit_max"] = jnp.max(logit_max_L)
            for i in range(logit_max_L.shape[0]):
                metrics[f"attn_logit_max/{i}"] = logit_max_L[i]
        return objective, metrics

    def train_dataset(self, *, batch_size, seed, shard_index, shard_count):
        """Shuffled, endlessly repeated training rows."""
        if isinstance(self.data, streaming.StreamingData):
            return self.data.train_dataset(
                batch_size=batch_size, seed=seed, shard_index=shard_index, shard_count=shard_count
            )
        rows = self.data.train
        make = text_data.make_lm_dataset if isinstance(rows, np.ndarray) else examples.make_dataset
        return make(
            rows,
            batch_size=batch_size,
            seed=seed,
            shuffle=True,
            num_epochs=None,
            shard_index=shard_index,
            shard_count=shard_count,
        )

    def eval_batches(self, split, *, batch_size, shard_index, shard_count) -> Iterator[Any]:
        """One ordered pass over the validation rows."""
        if split != "val":
            return super().eval_batches(
                split, batch_size=batch_size, shard_index=shard_index, shard_count=shard_count
            )
        if isinstance(self.data, streaming.StreamingData):
            ds = self.data.eval_dataset(
                batch_size=batch_size, shard_index=shard_index, shard_count=shard_count
            )
            return iter(ds)
        rows = self.data.val
        make = text_data.make_lm_dataset if isinstance(rows, np.ndarray) else examples.make_dataset
        ds = make(
            rows,
            batch_size=batch_size,
            seed=0,
            shuffle=False,
            num_epochs=1,
            shard_index=shard_index,
            shard_count=shard_count,
        )
        return iter(ds)

    @functools.cached_property
    def num_train_examples(self) -> int:
        """Training rows per epoch (None: unknown, e.g. streaming or a dry run)."""
        return None if self.data is None else self.data.num_train_examples

    def items_per_example(self) -> int:
        """Tokens per sequence."""
        return self.config.data.seq_len

    def on_train_end(self, model: nnx.Module, workdir: str) -> None:
        """Samples config.sample.prompts with the shared sampler; logs and saves them."""
        cfg = self.config.sample
        if not cfg.prompts:
            return
        from framework import sampling  # the sampler is only needed here

        out = sampling.generate(
            model,
            self.tokenizer,
            list(cfg.prompts),
            max_new_tokens=cfg.max_new_tokens,
            temperature=cfg.temperature,
            top_k=cfg.top_k,
            rng=cfg.seed,
        )
        lines = [f"{p!r} -> {p + t!r}" for p, t in zip(cfg.prompts, out.texts, strict=True)]
        if jax.process_index() == 0:
            logging.info("samples (temperature %s):\n%s", cfg.temperature, "\n".join(lines))
            with open(os.path.join(workdir, "samples.txt"), "w") as f:
                f.write("\n".join(lines) + "\n")

    def describe_model(self) -> dict[str, float]:
        """Parameter counts and training FLOPs per token."""
        counts = transformer.param_count(self.model_config)
        active = {"active params": counts["active"]} if self.model_config.moe_experts else {}
        return {
            "params": counts["total"],
            **active,
            "non-embedding params": counts["non_embedding"],
            "train FLOPs/token": transformer.train_flops_per_token(
                self.model_config, self.config.data.seq_len
            ),
        }
