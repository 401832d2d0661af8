"""Tokenizers: a UTF-8 byte tokenizer and a SentencePiece wrapper with one interface.

Every tokenizer has ``pad_id``, ``bos_id``, ``eos_id``, ``vocab_size``,
``encode(text) -> int32 array`` (no special tokens added) and ``decode(ids) -> str``
(special and out-of-range ids dropped). ``make_tokenizer`` builds one from a config
string; ``train_sentencepiece`` trains a SentencePiece model offline.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import sentencepiece as spm

TOKENIZER_KINDS = ("byte", "sentencepiece")


@runtime_checkable
class Tokenizer(Protocol):
    """What the data pipeline, tasks and samplers need from a tokenizer."""

    pad_id: int
    bos_id: int
    eos_id: int
    vocab_size: int

    def encode(self, text: str) -> np.ndarray:
        """Returns the int32 token ids of `text`, without BOS/EOS."""
        ...

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Returns the text of `ids`, dropping special and out-of-range ids."""
        ...


class ByteTokenizer:
    """UTF-8 bytes as ids 0..255, plus PAD=256, BOS=257, EOS=258.

    Written here rather than taken from a library because it is a few lines of numpy
    and lossless for any text, which makes it the zero-download default.
    """

    pad_id: int = 256
    bos_id: int = 257
    eos_id: int = 258
    vocab_size: int = 259

    def encode(self, text: str) -> np.ndarray:
        """Returns the UTF-8 bytes of `text` as int32 ids."""
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int32)

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Returns the text of the byte ids in `ids`; other ids are dropped."""
        arr = np.asarray(ids, dtype=np.int64).reshape(-1)
        arr = arr[(arr >= 0) & (arr < 256)]
        return arr.astype(np.uint8).tobytes().decode("utf-8", errors="replace")

    def __repr__(self) -> str:
        return "ByteTokenizer(vocab_size=259)"


class SentencePieceTokenizer:
    """A SentencePiece model behind the `Tokenizer` interface.

    PAD: the model's pad piece if it has one; otherwise the EOS id (the common
    GPT-2-style choice: padded positions are masked out of the loss anyway, and
    EOS is already a piece decode drops). BOS: the model's bos piece, else EOS.
    """

    def __init__(self, model_path: str):
        if not os.path.isfile(model_path):
            raise FileNotFoundError(
                f"SentencePiece model file {model_path!r} does not exist; pass the path of "
                "a .model file (train one with data.tokenizers.train_sentencepiece)."
            )
        self.model_path = model_path
        self._sp = spm.SentencePieceProcessor(model_file=model_path)
        self.vocab_size: int = int(self._sp.get_piece_size())
        eos, bos, pad = self._sp.eos_id(), self._sp.bos_id(), self._sp.pad_id()
        if eos < 0:
            raise ValueError(
                f"SentencePiece model {model_path!r} defines no EOS piece; retrain it with "
                "eos_id set (data.tokenizers.train_sentencepiece does this)."
            )
        self.eos_id: int = int(eos)
        self.bos_id: int = int(bos) if bos >= 0 else self.eos_id
        self.pad_id: int = int(pad) if pad >= 0 else self.eos_id
        self._special = np.array(sorted({self.pad_id, self.bos_id, self.eos_id}), np.int64)

    def encode(self, text: str) -> np.ndarray:
        """Returns the int32 piece ids of `text`, without BOS/EOS."""
        return np.asarray(self._sp.encode(text), dtype=np.int32)

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Returns the text of `ids`, dropping PAD/BOS/EOS and out-of-range ids."""
        arr = np.asarray(ids, dtype=np.int64).reshape(-1)
        keep = (arr >= 0) & (arr < self.vocab_size) & ~np.isin(arr, self._special)
        return self._sp.decode([int(i) for i in arr[keep]])

    def __repr__(self) -> str:
        return f"SentencePieceTokenizer({self.model_path!r}, vocab_size={self.vocab_size})"


def _lines(text_files: Sequence[str]) -> Iterator[str]:
    """Yields the lines of every file (newlines stripped) for the trainer."""
    for path in text_files:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\n")
                if line:
                    yield line


def train_sentencepiece(
    text_files: Sequence[str],
    *,
    vocab_size: int,
    model_prefix: str,
    model_type: str = "unigram",
    byte_fallback: bool = False,
    character_coverage: float = 1.0,
) -> str:
    """Trains a SentencePiece model on `text_files` offline and returns the .model path.

    Ids: UNK=0, BOS=1, EOS=2, PAD=3. Normalization is the identity and whitespace is
    kept as is, and "\\n" is a user-defined piece, so decode(encode(t)) == t for text
    made of characters seen in training (set byte_fallback=True, which needs
    vocab_size > 260, to make unseen characters lossless too; with it, a
    character_coverage below 1 leaves rare characters to bytes).
    """
    text_files = [str(p) for p in text_files]
    missing = [p for p in text_files if not os.path.isfile(p)]
    if not text_files or missing:
        raise FileNotFoundError(
            f"train_sentencepiece needs existing text files, but got {missing or 'none'}; "
            "pass the paths of UTF-8 .txt files."
        )
    parent = os.path.dirname(os.path.abspath(model_prefix))
    os.makedirs(parent, exist_ok=True)
    try:
        spm.SentencePieceTrainer.train(
            # An iterator rather than `input=`: the trainer splits `input` on commas.
            sentence_iterator=_lines(text_files),
            model_prefix=model_prefix,
            vocab_size=vocab_size,
            model_type=model_type,
            unk_id=0,
            bos_id=1,
            eos_id=2,
            pad_id=3,
            normalization_rule_name="identity",
            remove_extra_whitespaces=False,
            user_defined_symbols=["\n"],
            character_coverage=character_coverage,
            byte_fallback=byte_fallback,
            minloglevel=2,
        )
    except RuntimeError as e:
        raise ValueError(
            f"SentencePiece training on {text_files} with vocab_size={vocab_size} failed "
            f"({str(e).splitlines()[-1]}); lower vocab_size or give more text."
        ) from e
    return model_prefix + ".model"


def make_tokenizer(kind: str, model_path: str = "") -> Tokenizer:
    """Returns the tokenizer named by `kind` ('byte' or 'sentencepiece')."""
    if kind == "byte":
        return ByteTokenizer()
    if kind == "sentencepiece":
        if not model_path:
            raise ValueError(
                "Tokenizer kind 'sentencepiece' needs a model path; set model_path to a "
                ".model file (train one with data.tokenizers.train_sentencepiece)."
            )
        if not os.path.isfile(model_path):
            raise FileNotFoundError(
                f"SentencePiece model file {model_path!r} does not exist; fix model_path or "
                "train a model with data.tokenizers.train_sentencepiece."
            )
        return SentencePieceTokenizer(model_path)
    raise ValueError(f"Unknown tokenizer kind {kind!r}; choose one of {list(TOKENIZER_KINDS)}.")


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: python -m data.tokenizers --input=a.txt[,b.txt] --vocab_size=N --model_prefix=P."""
    import argparse  # a three-option command needs no flag library

    parser = argparse.ArgumentParser(description="Train a SentencePiece model for data.tokenizer.")
    parser.add_argument("--input", required=True, help="comma-separated text files")
    parser.add_argument("--vocab_size", type=int, required=True)
    parser.add_argument("--model_prefix", required=True, help="writes PREFIX.model")
    args = parser.parse_args(argv)
    path = train_sentencepiece(
        args.input.split(","), vocab_size=args.vocab_size, model_prefix=args.model_prefix
    )
    print(
        f"wrote {path}; use --config.data.tokenizer=sentencepiece "
        f"--config.data.sentencepiece_model={path} --config.model.vocab_size={args.vocab_size}"
    )


if __name__ == "__main__":
    main()
