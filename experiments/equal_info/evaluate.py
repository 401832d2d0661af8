"""Per-method numbers of the Equal-Info Windows reproduction, from M2 runs and tokens.

For a method: its compression ratio (bytes per token on validation), M2's validation
loss in bits per byte = loss / ln 2 / ratio (every token counted, window padding
included, over the bytes the tokens cover), the uniform model's log2(v) / ratio and a
unigram model's (token frequencies of the training files, add-1/2 smoothed) beside it,
FLOPs per byte (2 N(M2) / ratio, plus 2 N(M1) per byte for M1-driven methods, as the
paper counts; N = non-embedding parameters for both), and for windowed methods the
validation loss at each token position within a window at every kept checkpoint (what
M2 learns first), beside each position's unigram loss (its token frequencies alone) on
the same validation rows.
"""

from __future__ import annotations

import math
import os

import numpy as np

from data import examples
from experiments.equal_info import methods as methods_lib
from framework import checkpoint, config as config_lib, files

VAL_ROWS = 64  # validation rows scored per checkpoint for the position curves
VERSION = 3  # of equal_info_eval.json's contents; an older cached file is recomputed
# (3: each position's unigram loss on the rows its model loss is measured on)


def bits_per_byte(loss_nats: float, ratio: float) -> float:
    """Bits per byte of a per-token loss at `ratio` bytes per token."""
    return loss_nats / math.log(2) / ratio


def flops_per_byte(m2_nonembedding: int, ratio: float, m1_params: int = 0) -> float:
    """Inference FLOPs per byte: M2 over the tokens, plus M1 once per byte."""
    return 2 * m2_nonembedding / ratio + 2 * m1_params


def _unigram_logp_V(train: np.ndarray, vocab: int, position: int, per_window: int):
    """Log-frequencies (add-1/2) of the training tokens at one position of the windows."""
    counts = np.bincount(train[position::per_window], minlength=vocab) + 0.5
    return np.log(counts / counts.sum())


def unigram_loss(train_path: str, val_path: str, vocab: int, per_window: int = 1) -> list:
    """Nats per validation token of the training files' token frequencies (add-1/2),
    counted apart for each position within a window of `per_window` tokens (the files
    hold whole windows, so a token's position is its index mod per_window): one value
    per position, [overall] when per_window is 1."""
    train = np.concatenate(examples.read_token_files(train_path, vocab))
    val = np.concatenate(examples.read_token_files(val_path, vocab))
    return [
        float(-_unigram_logp_V(train, vocab, p, per_window)[val[p::per_window]].mean())
        for p in range(per_window)
    ]


def position_losses(
    run_dir: str, per_window: int, rows: int = VAL_ROWS
) -> tuple[dict[int, list], list]:
    """({checkpoint step: mean NLL of the targets at window position 0..per_window-1},
    the same targets' NLL under the training files' token frequencies at each position):
    the model and its unigram line on the same `rows` validation rows."""
    from flax import nnx

    from framework import decoding, sample

    config = config_lib.saved_config(run_dir)
    d = config.data
    val = examples.token_rows(d.val_path, d.tokens_vocab_size, d.seq_len)
    tokens_BT = np.concatenate([val["inputs"][:rows], val["targets"][:rows, -1:]], axis=1)
    pos_T = np.arange(1, tokens_BT.shape[1]) % per_window  # each target's place in its window
    out, (model, _, trainer) = {}, sample.load_run(run_dir)  # one model, each step's params
    graphdef = nnx.split(model)[0]
    for step in checkpoint.saved_steps(run_dir):
        params, _ = checkpoint.restore_params(run_dir, step, trainer.abstract_state["params"])
        params = nnx.split(trainer.merge(params))[1]
        nll_BT = -np.asarray(decoding.score_tokens(graphdef, params, tokens_BT))
        out[step] = [float(nll_BT[:, pos_T == p].mean()) for p in range(per_window)]
    train = np.concatenate(examples.read_token_files(d.path, d.tokens_vocab_size))
    unigram = []
    for p in range(per_window):
        logp_V = _unigram_logp_V(train, d.tokens_vocab_size, p, per_window)
        unigram.append(float(-logp_V[tokens_BT[:, 1:][:, pos_T == p]].mean()))
    return out, unigram


def evaluate(run_dir: str, method: str, tokens_dir: str) -> dict:
    """The method's numbers (module docstring), cached in RUN_DIR/equal_info_eval.json."""
    path = os.path.join(run_dir, "equal_info_eval.json")
    result = files.read_json(os.path.join(run_dir, "result.json"))
    cached = files.read_json(path, None)
    if cached and cached.get("step") == result["step"] and cached.get("version") == VERSION:
        return cached
    from experiments.equal_info.compress import method_stats
    from models import transformer

    m, config = methods_lib.get(method), config_lib.saved_config(run_dir)
    stats = method_stats(tokens_dir, method)
    ratio, vocab = stats["val"]["ratio"], config.data.tokens_vocab_size
    m1_params = _m1_params(tokens_dir) if m.uses_m1 else 0
    loss = result["eval"]["val"]["loss"]
    d = config.data
    res = dict(
        version=VERSION,
        method=method,
        step=result["step"],
        ratio=ratio,
        vocab=vocab,
        val_loss=loss,
        bits_per_byte=bits_per_byte(loss, ratio),
        uniform_bpb=math.log2(vocab) / ratio,
        unigram_bpb=bits_per_byte(unigram_loss(d.path, d.val_path, vocab)[0], ratio),
        flops_per_byte=flops_per_byte(
            transformer.param_count(_model_cfg(config))["non_embedding"], ratio, m1_params
        ),
        stats=stats,
        curve=_val_curve(run_dir),
    )
    if m.tokens_per_window > 1:
        # beside: what M2 gets at each position from its token frequencies alone
        res["positions"], res["position_unigram"] = position_losses(run_dir, m.tokens_per_window)
    files.atomic_write_json(path, res)
    return res


def _m1_params(tokens_dir: str) -> int:
    """M1's non-embedding parameters (as M2's are counted), from its run's config."""
    from models import transformer

    run = files.read_json(os.path.join(tokens_dir, "m1.json"))["run"]
    return transformer.param_count(_model_cfg(config_lib.saved_config(run)))["non_embedding"]


def _model_cfg(config):
    from models import transformer

    return transformer.TransformerConfig(**config.model.to_dict())


def _val_curve(run_dir: str) -> list[tuple[int, float]]:
    """(step, validation loss) of every evaluation in metrics.jsonl."""
    rows = files.read_jsonl(os.path.join(run_dir, "metrics.jsonl"))
    return [(r["step"], r["loss"]) for r in rows if r.get("split") == "val"]
