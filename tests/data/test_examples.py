"""data/examples.py: JSONL examples (packing, masks, errors) and token files."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from data import examples, tokenizers
from framework.tasks import lm
from models import transformer

TOK = tokenizers.make_tokenizer("byte", "")
LINES = [
    {"prompt": "2+2=", "completion": "4"},
    {"prompt": "Capital of France? ", "completion": "Paris", "weight": 2.0},
    {"prompt": "abc", "completion": "def", "advantage": -0.5},
]


def write(tmp_path, lines, name="ex.jsonl") -> str:
    path = tmp_path / name
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return str(path)


def test_rows_mark_completion_targets_only(tmp_path):
    path = write(tmp_path, LINES)
    rows = examples.pack(examples.read_examples(path), TOK, 32, packed=True, path=path)
    assert rows["inputs"].shape == (2, 32)  # examples 1 and 2 share a row; 3 does not fit
    seg, pos, mask = rows["segment_ids"][0], rows["positions"][0], rows["mask"][0]
    n1 = 1 + len("2+2=") + 1  # inputs: BOS, prompt, completion ("4"); EOS only a target
    assert list(seg[:n1]) == [1] * n1 and seg[n1] == 2
    assert list(pos[: n1 + 2]) == [*range(n1), 0, 1]
    # targets carrying loss: the completion and EOS ("4", EOS), weight 1; then "Paris"+EOS x2
    assert list(mask[:n1]) == [0, 0, 0, 0, 1, 1][:n1]
    assert TOK.decode(rows["targets"][0][mask > 0][:1].tolist()) == "4"
    assert rows["targets"][0][n1 - 1] == TOK.eos_id
    assert sorted(set(mask[n1:].tolist())) == [0.0, 2.0] and (mask == 2.0).sum() == 6
    assert (rows["advantage"][1] == -0.5).sum() == 4 and rows["advantage"][0].sum() == 0
    alone = examples.pack(examples.read_examples(path), TOK, 32, packed=False, path=path)
    assert alone["inputs"].shape == (3, 32) and alone["segment_ids"].max() == 1


def test_a_completion_has_the_same_loss_packed_or_alone(tmp_path):
    path = write(tmp_path, LINES[:2])
    exs = examples.read_examples(path)
    packed = examples.pack(exs, TOK, 64, packed=True, path=path)
    alone = examples.pack(exs[1:], TOK, 64, packed=False, path=path)
    cfg = transformer.TransformerConfig(
        vocab_size=TOK.vocab_size, d_model=32, num_heads=2, num_layers=2, d_ff=64, max_len=64
    )
    model = transformer.Transformer(cfg, rngs=nnx.Rngs(0))

    def token_nll(rows):
        logits = model(
            jnp.asarray(rows["inputs"]),
            positions_BT=jnp.asarray(rows["positions"]),
            segment_ids_BT=jnp.asarray(rows["segment_ids"]),
        )
        logp = jax.nn.log_softmax(logits, -1)
        nll = -jnp.take_along_axis(logp, jnp.asarray(rows["targets"])[..., None], -1)[..., 0]
        return np.asarray(nll[0])[rows["mask"][0] > 0]

    second = token_nll(packed)[2:]  # after example 1's two completion targets
    np.testing.assert_allclose(second, token_nll(alone), rtol=1e-5, atol=1e-6)
    no_segments = dict(packed, segment_ids=np.ones_like(packed["segment_ids"]))
    assert not np.allclose(token_nll(no_segments)[2:], token_nll(alone), atol=1e-4)


def test_policy_gradient_matches_nll_at_advantage_one_and_vanishes_at_zero():
    rng = np.random.default_rng(0)
    logits = jnp.asarray(rng.normal(size=(2, 5, 11)), jnp.float32)
    targets = jnp.asarray(rng.integers(0, 11, size=(2, 5)), jnp.int32)
    mask = jnp.asarray([[0, 1, 1, 1, 0], [0, 0, 1, 1, 1]], jnp.float32)

    def grad(fn):
        return jax.grad(lambda x: fn(x)[0])(logits)

    pg = lambda adv: grad(lambda x: lm.policy_gradient_loss(x, targets, adv * mask, mask))
    nll = grad(lambda x: lm.cross_entropy_loss(x, targets, mask))
    np.testing.assert_allclose(pg(1.0), nll, rtol=1e-6, atol=1e-7)
    assert not np.any(pg(0.0))
    np.testing.assert_allclose(pg(-2.0), -2.0 * nll, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "ex.jsonl:2: not valid JSON"),
        ({"prompt": "a"}, "ex.jsonl:2: the field 'completion' is missing"),
        ({"prompt": 3, "completion": "b"}, "ex.jsonl:2: the field 'prompt' must be str"),
        ({"prompt": "a", "completion": "b", "weight": -1}, "'weight' must be finite and >= 0"),
        ({"prompt": "a", "completion": ""}, "ex.jsonl:2: the completion '' tokenises to nothing"),
        ({"prompt": "a" * 80, "completion": "b"}, "ex.jsonl:2: the example has 83 tokens"),
    ],
)
def test_bad_lines_name_file_line_and_field(tmp_path, line, message):
    path = write(tmp_path, [LINES[0], line])
    with pytest.raises(examples.DataError, match=message.replace("(", r"\(").replace("+", r"\+")):
        examples.load_examples(path, TOK, 48, packed=True, val_fraction=0.0)


def test_token_files_become_rows_and_ids_are_checked(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(0, 30, dtype=np.uint16))
    np.save(tmp_path / "b.npy", np.arange(30, 41, dtype=np.int64))
    data = examples.load_tokens(str(tmp_path), 65_536, 8, val_fraction=0.2)
    assert data.train["inputs"].shape == (4, 8) and data.val["inputs"].shape == (1, 8)
    np.testing.assert_array_equal(data.train["inputs"][1], np.arange(8, 16))
    np.testing.assert_array_equal(data.train["targets"][1], np.arange(9, 17))
    with pytest.raises(examples.DataError, match=r"id 40 at index 10, outside .*\[0, 40\)"):
        examples.load_tokens(str(tmp_path), 40, 8, val_fraction=0.2)


def test_eval_pass_covers_every_row_with_full_batches(tmp_path):
    path = write(tmp_path, [{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(5)])
    data = examples.load_examples(path, TOK, 16, packed=False, val_fraction=0.0)
    batches = list(
        examples.make_dataset(data.train, batch_size=2, seed=0, shuffle=False, num_epochs=1)
    )
    assert [b["inputs"].shape[0] for b in batches] == [2, 2, 2]
    assert sum(float(b["mask"].sum()) for b in batches) == float(data.train["mask"].sum())
