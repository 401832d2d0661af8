"""A verifier for tests: the answer is the first digit in the text (if any); a sample is
correct when it equals the record's 'answer'."""

from __future__ import annotations

import re


def extract_answer(text: str) -> int | None:
    m = re.search(r"\d", text)
    return int(m.group()) if m else None


def is_correct(record: dict, text: str) -> bool:
    return extract_answer(text) == record["answer"]
