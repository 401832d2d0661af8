"""The small proxy decoder of LR-sweep papers and the run settings every sweep point shares.

Wortsman et al. (2023, small-scale proxies) train a pre-LN decoder with LayerNorm
without bias, no biases in dense layers, a GELU MLP (d_ff = 4 d_model), learned
positions and untied embeddings; Everett et al. (2024, scaling exponents) sweep the
same family of models. `proxy_lm_config` is that model plus what a point of such a
sweep needs: its sequence length, batch and steps, the final checkpoint only,
per-tensor RMS logging, and no per-run loss plot (the report draws the sweep's
figures). configs/small_scale_proxies.py and configs/scaling_exponents.py add their
own heads rule, evaluation cadence, probes, optimizer and schedule.
"""

from __future__ import annotations

from collections.abc import Mapping

import ml_collections

from framework.tasks import lm

# The paper-scale data (variant=paper): C4 prepared as ArrayRecord for tfds (`tfds build
# c4/en:3.1.0 --file_format=array_record`; data.tfds_dir or $TFDS_DATA_DIR) streamed
# through data/streaming.py, and a 32k SentencePiece vocabulary (e.g. T5's cc_all.32000
# model, or `python -m data.prepare ... --sentencepiece_vocab=32000` on your own text).
PAPER_DATA = dict(
    source="tfds:c4/en:3.1.0",
    val_source="tfds:c4/en:3.1.0@validation",
    tokenizer="sentencepiece",
    sentencepiece_model="runs/data/c4_32k.model",
    num_workers=8,
)


def proxy_lm_config(
    run: Mapping[str, int],
    *,
    d_model: int,
    num_layers: int,
    num_heads: int,
    steps: int,
    paper: bool,
) -> ml_collections.ConfigDict:
    """The LM config of one sweep point: `run` gives seq, batch and chars (embedded corpus
    characters; 0: the default), `paper` the paper-scale data (a 32k SentencePiece vocab)."""
    config = lm.default_config()
    config.model.update(
        dict(
            d_model=d_model,
            num_layers=num_layers,
            num_heads=num_heads,
            d_ff=4 * d_model,
            max_len=run["seq"],
            norm="layernorm",
            norm_bias=False,
            use_bias=False,
            mlp="gelu",
            position="learned",
            tie_embeddings=False,
        )
    )
    if paper:
        config.model.vocab_size = 32_000
        config.data.update(PAPER_DATA)
    config.data.seq_len = run["seq"]
    config.data.embedded_chars = run["chars"] or 1_000_000
    config.train.batch_size = run["batch"]
    config.train.total_steps = steps
    config.train.checkpoint_every_steps = 0  # the final checkpoint only
    config.train.keep_checkpoints = 1
    config.train.log_tensor_rms = True
    config.train.plot_losses = False  # ~2 s a run; the report draws the sweep's figures
    config.schedule.name = "warmup_cosine"
    return config
