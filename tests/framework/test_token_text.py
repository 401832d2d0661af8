"""framework/token_text.py with a SentencePiece model, whose encode adds a word-boundary
piece in front of a text and whose decode drops a leading one: continuations keep their
leading space, scoring uses a continuation's ids as they follow the prompt, and stop
strings stop on the device in the middle of a text; the byte tokenizer is unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from flax import nnx

from data.corpus import embedded_corpus
from data.tokenizers import ByteTokenizer, SentencePieceTokenizer, train_sentencepiece
from framework import sampling, token_text
from models.transformer import Transformer, TransformerConfig


@pytest.fixture(scope="module")
def sp(tmp_path_factory) -> SentencePieceTokenizer:
    d = tmp_path_factory.mktemp("sp")
    corpus = d / "train.txt"
    corpus.write_text(embedded_corpus(60_000, seed=3), encoding="utf-8")
    return SentencePieceTokenizer(
        train_sentencepiece([str(corpus)], vocab_size=100, model_prefix=str(d / "tiny"))
    )


def test_a_continuation_decodes_and_encodes_as_it_follows_its_prompt(sp):
    prompt, cont = "Once", " upon a time"
    whole = sp.encode(prompt + cont)
    tail = whole[len(sp.encode(prompt)) :]
    assert sp.decode(tail) == "upon a time"  # decoded alone: the space is gone
    assert token_text.continuation_text(sp, tail) == cont
    assert sp.encode("2")[0] != sp.encode("1+1=2")[-1]  # a boundary piece in front
    ids = token_text.continuation_ids(sp, "1+1=", "2")
    np.testing.assert_array_equal(ids, sp.encode("1+1=2")[len(sp.encode("1+1=")) :])


def test_stop_strings_match_in_the_middle_of_a_text(sp):
    _, stop_SK = token_text.stop_tables(sp, sp.vocab_size, None, ["Q:"])
    rows = {tuple(r[r >= 0]) for r in stop_SK if (r != -3).any()}
    mid = tuple(sp.encode("x\nQ: y")[3:5])  # "Q:" after a newline, as generated
    assert mid in rows and tuple(sp.encode("Q:")) in rows
    assert token_text.cut_at_stop(sp, sp.encode(" yes\nQ: no")[1:], ["\nQ:"])[0] == " yes"
    with pytest.raises(ValueError, match=r"stop tokens \[100\] are outside"):
        token_text.stop_tables(sp, sp.vocab_size, [100], [])


def test_scoring_with_a_sentencepiece_model_counts_the_continuations_own_tokens(sp):
    cfg = TransformerConfig(vocab_size=100, d_model=16, num_layers=1, num_heads=2, d_ff=32)
    model = Transformer(cfg, rngs=nnx.Rngs(0))
    out = sampling.score(model, sp, ["1+1=", "Once"], ["2", " upon a time"])
    n_tokens = [len(x) for x in out.token_logprobs]
    assert n_tokens == [1, len(sp.encode("Once upon a time")) - len(sp.encode("Once"))]
    texts = sampling.generate(model, sp, ["Once"], max_new_tokens=8, temperature=0.0).texts
    ids = sampling.generate(model, sp, ["Once"], max_new_tokens=8, temperature=0.0).tokens[0]
    assert texts[0] == token_text.continuation_text(sp, ids[ids != sp.pad_id])


def test_the_byte_tokenizer_is_unchanged():
    tok = ByteTokenizer()
    ids = tok.encode(" upon")
    assert token_text.continuation_text(tok, ids) == tok.decode(ids) == " upon"
    np.testing.assert_array_equal(token_text.continuation_ids(tok, "Once", " upon"), ids)
