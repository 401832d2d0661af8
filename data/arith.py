"""The `arith` task family: chained-arithmetic problems, their gold solutions and a verifier.

A problem starts at x0 and applies k steps (op, y), op in + - *, e.g. the terse prompt
`Q: 70 *2 *2 -43 *2 ?\\n` or its words form (`Di has 70 stamps. Then doubles them. ...
How many now?\\n`). The gold solution, the same for both styles, is one step per line and
an answer line: `70*2=140\\n140*2=280\\n280-43=237\\n237*2=474\\nA: 474\\n` (the EOS is
the tokenizer's / loader's, not part of the string).

- `generate` draws problems deterministically from a seed: per problem k and d uniformly
  from the given values; operands (and x0) 1..9 for d=1, 10..99 for d=2; `*` only by a
  `mul_factors` factor and only while the value is below 300; a chain that leaves
  [0, max_value] is rejected whole and redrawn. With `exclude` it draws a held-out set:
  no chain (x0 and its steps) of `exclude`, none twice.
- The verifier reads a completion: `extract_answer` (the first line starting `A:`),
  `is_correct`, `parse_steps`, prefix-correct oracle `step_labels`, per-step `arith_ok`
  (rhs == lhs op y, whatever the problem) and `is_false_positive`.
- `write_jsonl`/`read_jsonl`: one problem per line, `{"prompt", "completion", "answer",
  "k", "d", "style", "x0", "ops"}`, so a file is both a `data.format='examples'` file and
  a question set carrying its answers.
- CLI: `python -m data.arith --output=FILE.jsonl --n=1000 --seed=0 --k=1-6 --d=1,2
  --ops=+-* --style=terse [--words_fraction=0.1]`; a bad knob prints one `error: ...`
  line and exits 2, writing nothing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import sys
import tempfile
from collections.abc import Collection, Sequence
from typing import Any

K_MIN, K_MAX = 1, 8
OPERAND_RANGE = {1: (1, 9), 2: (10, 99)}  # d -> inclusive operand (and x0) range
OPS = "+-*"
STYLES = ("terse", "words")
MUL_BELOW = 300  # `*` only applies to values below this
MUL_FACTOR_RANGE = (2, 9)
MAX_TRIES = 10_000  # chains drawn per problem before a configuration counts as infeasible
MAX_LISTED = 1_000  # the largest value a --k/--d list may name (k, d are far below it)

NAMES = ("Di", "Al", "Bo", "Cy", "Ed", "Fay", "Gus", "Hal", "Ivy", "Jo")
ITEMS = ("stamps", "marbles", "apples", "coins", "cards", "shells", "beads", "pens")
VERBS = {"+": ("gets", "finds", "buys"), "-": ("gives away", "loses", "eats")}
MUL_WORDS = {2: "doubles them", 3: "triples them", 4: "quadruples them"}

_STEP_RE = re.compile(r"(-?\d+)([+\-*])(\d+)=(-?\d+)", re.ASCII)
_ANSWER_RE = re.compile(r"A:\s*(-?\d+)", re.ASCII)


Chain = tuple[int, tuple[tuple[str, int], ...]]  # (x0, ops)


@dataclasses.dataclass(frozen=True)
class Problem:
    """One chained-arithmetic problem and its gold solution (values = v0..vk)."""

    x0: int
    ops: tuple[tuple[str, int], ...]
    values: tuple[int, ...]
    answer: int
    k: int
    d: int
    style: str
    prompt: str
    solution: str

    @property
    def chain(self) -> Chain:
        """(x0, ops): what makes two problems the same question, whatever their style."""
        return self.x0, self.ops

    def to_json(self) -> dict[str, Any]:
        """The JSONL record: an `examples` line (prompt, completion) plus the question."""
        return {
            "prompt": self.prompt,
            "completion": self.solution,
            "answer": self.answer,
            "k": self.k,
            "d": self.d,
            "style": self.style,
            "x0": self.x0,
            "ops": [[op, y] for op, y in self.ops],
        }

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Problem:
        """The problem of a `to_json` record; ValueError (one sentence) if it is malformed
        or its answer/completion disagree with the chain x0, ops."""
        if not isinstance(record, dict):
            raise ValueError(f"a record must be a JSON object, got {type(record).__name__}.")
        prompt = _get(record, "prompt", str)
        completion = _get(record, "completion", str)
        x0, k, d = _get(record, "x0", int), _get(record, "k", int), _get(record, "d", int)
        style = _get(record, "style", str)
        answer = _get(record, "answer", (int, str))
        if isinstance(answer, str):
            if not re.fullmatch(r"-?\d{1,100}", answer, re.ASCII):
                raise ValueError(f"the answer {answer[:40]!r} does not parse as an integer.")
            answer = int(answer)
        ops = _parse_ops(_get(record, "ops", list))
        if len(ops) != k:
            raise ValueError(f"k={k} but the record has {len(ops)} ops; they must agree.")
        if style not in STYLES:
            raise ValueError(f"style={style!r} is unknown; use one of {list(STYLES)}.")
        values = chain_values(x0, ops)
        if answer != values[-1]:
            raise ValueError(f"the answer {answer} is not the chain's final value {values[-1]}.")
        if completion != gold_solution(x0, ops):
            raise ValueError(f"the completion {completion[:40]!r} is not the gold solution.")
        return cls(x0, ops, values, answer, k, d, style, prompt, completion)


def _get(record: dict, name: str, kinds: type | tuple[type, ...]) -> Any:
    """record[name] checked to be of `kinds` (a bool is not an int here)."""
    if name not in record:
        raise ValueError(f"the field {name!r} is missing; every record needs it.")
    value = record[name]
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    if not isinstance(value, kinds) or isinstance(value, bool):
        names = " or ".join(t.__name__ for t in kinds)
        raise ValueError(f"the field {name!r} must be {names}, got {str(value)[:40]!r}.")
    return value


def _parse_ops(raw: list) -> tuple[tuple[str, int], ...]:
    """[[op, y], ...] as a tuple of (op, y), checked."""
    out = []
    for item in raw:
        ok = isinstance(item, list | tuple) and len(item) == 2
        if not (ok and item[0] in tuple(OPS) and type(item[1]) is int and item[1] >= 0):
            raise ValueError(f"the op {str(item)[:40]!r} is not a pair [op, y] with op in {OPS}.")
        out.append((item[0], item[1]))
    return tuple(out)


def level(problem: Problem) -> int:
    """The scalar difficulty k + 4*(d-1) used for mixes."""
    return problem.k + 4 * (problem.d - 1)


def apply_op(v: int, op: str, y: int) -> int:
    """v op y."""
    if op == "+":
        return v + y
    if op == "-":
        return v - y
    if op == "*":
        return v * y
    raise ValueError(f"op {op!r} is not one of {OPS!r}.")


def chain_values(x0: int, ops: Sequence[tuple[str, int]]) -> tuple[int, ...]:
    """v0..vk of the chain starting at x0."""
    values = [x0]
    for op, y in ops:
        values.append(apply_op(values[-1], op, y))
    return tuple(values)


def gold_solution(x0: int, ops: Sequence[tuple[str, int]]) -> str:
    """One `v op y=w` line per step, then `A: answer`, each ending in a newline."""
    values = chain_values(x0, ops)
    steps = "".join(f"{v}{op}{y}={w}\n" for v, (op, y), w in zip(values, ops, values[1:]))
    return f"{steps}A: {values[-1]}\n"


def terse_prompt(x0: int, ops: Sequence[tuple[str, int]]) -> str:
    """`Q: 70 *2 -43 ?\\n`."""
    return f"Q: {x0}{''.join(f' {op}{y}' for op, y in ops)} ?\n"


def words_prompt(x0: int, ops: Sequence[tuple[str, int]], rng: random.Random) -> str:
    """`Di has 70 stamps. Then doubles them. Then eats 43. How many now?\\n` (the name,
    item and each + / - verb drawn from rng)."""
    parts = [f"{rng.choice(NAMES)} has {x0} {rng.choice(ITEMS)}."]
    for op, y in ops:
        if op == "*":
            parts.append(f"Then {MUL_WORDS.get(y, f'multiplies them by {y}')}.")
        else:
            parts.append(f"Then {rng.choice(VERBS[op])} {y}.")
    return " ".join([*parts, "How many now?"]) + "\n"


def _build(
    x0: int, ops: tuple[tuple[str, int], ...], d: int, style: str, rng: random.Random
) -> Problem:
    """The Problem of a chain (the words prompt draws from rng)."""
    values = chain_values(x0, ops)
    prompt = words_prompt(x0, ops, rng) if style == "words" else terse_prompt(x0, ops)
    return Problem(x0, ops, values, values[-1], len(ops), d, style, prompt, gold_solution(x0, ops))


def make_problem(
    x0: int,
    ops: Sequence[tuple[str, int]],
    *,
    d: int | None = None,
    style: str = "terse",
    seed: int = 0,
) -> Problem:
    """A hand-made problem (no range checks); d defaults to 2 if x0 or a +/- operand has
    two or more digits, else 1; `seed` picks the words-style name, item and verbs."""
    ops = tuple((str(op), int(y)) for op, y in ops)
    if not ops or any(op not in OPS for op, _ in ops):
        raise ValueError(f"ops={ops!r} must be a non-empty sequence of (op, y), op in {OPS!r}.")
    if style not in STYLES:
        raise ValueError(f"style={style!r} is unknown; use one of {list(STYLES)}.")
    if d is None:
        d = 2 if max([x0, *(y for op, y in ops if op != "*")]) >= 10 else 1
    return _build(int(x0), ops, d, style, random.Random(seed))


def _as_values(name: str, value: int | Sequence[int], allowed: Sequence[int]) -> tuple[int, ...]:
    """An int or a sequence of ints as a tuple, each checked to be in `allowed`."""
    shown = f"{allowed[0]}..{allowed[-1]}" if len(allowed) > 2 else " or ".join(map(str, allowed))
    if isinstance(value, str):
        raise ValueError(f"{name}={value!r} must be an int or a sequence of ints in {shown}.")
    values = (value,) if isinstance(value, int) else tuple(value)
    if not values:
        raise ValueError(f"{name} is empty; give at least one value in {shown}.")
    for v in values:
        if not isinstance(v, int) or isinstance(v, bool) or v not in allowed:
            why = "is outside the allowed range" if len(allowed) > 2 else "is not allowed; use"
            raise ValueError(f"{name}={v!r} {why} {shown}.")
    return values


def check_knobs(
    n: int,
    *,
    k: int | Sequence[int],
    d: int | Sequence[int],
    ops: str,
    style: str,
    words_fraction: float | None,
    max_value: int,
    mul_factors: Sequence[int],
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(k values, d values, mul factors) checked; ValueError naming the first bad knob."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n={n!r} must be an integer >= 0 (the number of problems).")
    ks = _as_values("k", k, range(K_MIN, K_MAX + 1))
    ds = _as_values("d", d, tuple(OPERAND_RANGE))
    lo, hi = MUL_FACTOR_RANGE
    factors = _as_values("mul_factors", mul_factors, range(lo, hi + 1))
    if not isinstance(ops, str) or not ops or set(ops) - set(OPS) or len(set(ops)) < len(ops):
        raise ValueError(f"ops={ops!r} must be distinct characters from {OPS!r}, e.g. '+-'.")
    if style not in STYLES:
        raise ValueError(f"style={style!r} is unknown; use one of {list(STYLES)}.")
    if words_fraction is not None and not 0.0 <= words_fraction <= 1.0:
        raise ValueError(f"words_fraction={words_fraction!r} must be in [0, 1].")
    largest = OPERAND_RANGE[max(ds)][1]
    if not isinstance(max_value, int) or isinstance(max_value, bool) or max_value < largest:
        raise ValueError(
            f"max_value={max_value!r} must be an integer >= {largest}, the largest operand "
            f"for d={max(ds)}."
        )
    return ks, ds, factors


def _draw_chain(
    rng: random.Random,
    k: int,
    d: int,
    ops: str,
    max_value: int,
    factors: tuple[int, ...],
) -> tuple[int, tuple[tuple[str, int], ...]]:
    """(x0, ops) of a chain staying in [0, max_value]; a chain that leaves it is redrawn."""
    lo, hi = OPERAND_RANGE[d]
    for _ in range(MAX_TRIES):
        v = x0 = rng.randint(lo, hi)
        steps: list[tuple[str, int]] = []
        for _ in range(k):
            allowed = [op for op in ops if op != "*" or v < MUL_BELOW]
            if not allowed:
                break
            op = rng.choice(allowed)
            y = rng.choice(factors) if op == "*" else rng.randint(lo, hi)
            v = apply_op(v, op, y)
            if not 0 <= v <= max_value:
                break
            steps.append((op, y))
        else:
            return x0, tuple(steps)
    raise ValueError(
        f"no chain with k={k}, d={d}, ops={ops!r} stays within [0, {max_value}] in "
        f"{MAX_TRIES} draws; raise max_value or allow more ops."
    )


def generate(
    n: int,
    *,
    seed: int,
    k: int | Sequence[int] = (1, 2, 3, 4, 5, 6),
    d: int | Sequence[int] = (1, 2),
    ops: str = "+-*",
    style: str = "terse",
    words_fraction: float | None = None,
    max_value: int = 999,
    mul_factors: Sequence[int] = (2, 3),
    exclude: Collection[Chain] | None = None,
) -> list[Problem]:
    """n problems, deterministic from seed (a prefix of a longer draw with the same knobs).

    Per problem: k and d uniformly from the given values; the style is `style`, or when
    `words_fraction` is set (it replaces `style`) 'words' with that probability. ValueError
    (one sentence) for a knob outside its range.

    With `exclude` (chains, possibly none) the set is held out: a problem whose chain is
    in `exclude` or already drawn is redrawn whole (k and d too), so no chain repeats and
    none of `exclude` appears. Small spaces (k = 1, d = 1: 144 chains) can run out;
    ValueError says so after MAX_TRIES redraws of one problem.
    """
    ks, ds, factors = check_knobs(
        n,
        k=k,
        d=d,
        ops=ops,
        style=style,
        words_fraction=words_fraction,
        max_value=max_value,
        mul_factors=mul_factors,
    )
    rng = random.Random(int(seed))
    out: list[Problem] = []
    seen = None if exclude is None else set(exclude)
    for _ in range(n):
        for _ in range(MAX_TRIES):
            kk, dd = rng.choice(ks), rng.choice(ds)
            if words_fraction is not None:
                style = "words" if rng.random() < words_fraction else "terse"
            x0, chain = _draw_chain(rng, kk, dd, ops, max_value, factors)
            if seen is None or (x0, chain) not in seen:
                break
        else:
            raise ValueError(
                f"only {len(out)} of {n} held-out problems with k={list(ks)}, d={list(ds)} "
                f"avoid the excluded chains and each other; ask for fewer, or allow larger "
                "k or d."
            )
        if seen is not None:
            seen.add((x0, chain))
        out.append(_build(x0, chain, dd, style, rng))
    return out


# ---------------------------------------------------------------------------- verifier


@dataclasses.dataclass(frozen=True)
class Step:
    """One line before the answer line; lhs/op/y/rhs are None when it does not parse."""

    text: str
    lhs: int | None = None
    op: str | None = None
    y: int | None = None
    rhs: int | None = None

    @property
    def parsed(self) -> bool:
        """Whether the line is `lhs op y=rhs`."""
        return self.rhs is not None

    @property
    def arith_ok(self) -> bool:
        """rhs == lhs op y (whatever the problem); False for an unparsable line."""
        return self.parsed and apply_op(self.lhs, self.op, self.y) == self.rhs


def _int(s: str) -> int | None:
    """int(s), None for a number Python refuses (over its digit limit)."""
    try:
        return int(s)
    except ValueError:
        return None


def _lines(text: str) -> list[str]:
    """The lines of text; the fragment after a final newline is no line."""
    lines = text.split("\n")
    return lines[:-1] if lines[-1] == "" else lines


def extract_answer(text: str) -> int | None:
    """The integer of the first line starting `A:` (regex `A:\\s*(-?\\d+)`, so trailing text
    after the number is ignored); None if there is no such line or it holds no number."""
    for line in _lines(text):
        if line.startswith("A:"):
            m = _ANSWER_RE.match(line)
            return _int(m.group(1)) if m else None
    return None


def is_correct(problem: Problem | dict, text: str) -> bool:
    """Whether the completion's answer is exactly the problem's answer (a Problem, or its
    JSON record: the generation evaluator's verifier interface)."""
    answer = problem["answer"] if isinstance(problem, dict) else problem.answer
    return extract_answer(text) == int(answer)


def parse_steps(text: str) -> list[Step]:
    """The lines before the first `A:` line (all lines if none), each parsed as
    `^(-?\\d+)([+\\-*])(\\d+)=(-?\\d+)$`; an unparsable line is a Step with no fields."""
    steps = []
    for line in _lines(text):
        if line.startswith("A:"):
            break
        m = _STEP_RE.fullmatch(line)
        nums = [_int(m.group(i)) for i in (1, 3, 4)] if m else [None]
        if None in nums:
            steps.append(Step(line))
        else:
            steps.append(Step(line, nums[0], m.group(2), nums[1], nums[2]))
    return steps


def step_labels(problem: Problem, text: str) -> list[bool]:
    """Prefix-correct oracle labels, one per step of parse_steps: step i is good iff every
    earlier step is good, it parses, i < k, lhs == v_i, (op, y) == ops[i] and
    rhs == lhs op y. Steps beyond k and unparsable lines are bad."""
    labels = []
    good = True
    for i, step in enumerate(parse_steps(text)):
        good = (
            good
            and step.parsed
            and i < problem.k
            and step.lhs == problem.values[i]
            and (step.op, step.y) == problem.ops[i]
            and step.arith_ok
        )
        labels.append(good)
    return labels


oracle_step_labels = step_labels  # the name in the task notes (arith.md §0.2)


def arith_ok(text: str) -> list[bool]:
    """Per step of parse_steps: rhs == lhs op y, ignoring the problem (copy vs compute)."""
    return [step.arith_ok for step in parse_steps(text)]


def is_false_positive(problem: Problem, text: str) -> bool:
    """A correct answer reached with a bad step or the wrong number of steps."""
    if not is_correct(problem, text):
        return False
    labels = step_labels(problem, text)
    return len(labels) != problem.k or not all(labels)


# ------------------------------------------------------------------------------- JSONL


def write_jsonl(problems: Sequence[Problem], path: str | os.PathLike) -> None:
    """One `to_json` record per line, written atomically (a temp file in the same folder,
    then os.replace); the folder is created if missing."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".jsonl")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for p in problems:
                f.write(json.dumps(p.to_json()) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the data from other users
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def read_jsonl(path: str | os.PathLike) -> list[Problem]:
    """The problems of a JSONL file (blank lines skipped); ValueError naming file:line for
    a line that is not JSON or not a valid problem record."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"Problem file {path!r} does not exist; pass a JSONL file.")
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                out.append(Problem.from_json(json.loads(line)))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not valid JSON ({e.msg}); fix the line.") from None
            except ValueError as e:
                raise ValueError(f"{path}:{n}: {e}") from None
    return out


# ------------------------------------------------------------------ prepared JSONL files

SPEC_KEYS = ("n", "seed", "k", "d", "ops", "style", "words_fraction", "max_value", "mul_factors")


def parse_spec(spec: str) -> dict[str, Any]:
    """`'n=1000 seed=0 k=1-6 d=1,2 words_fraction=0.1'` as generate()'s keyword arguments
    (space-separated key=value; the CLI's flag syntax); ValueError naming a bad entry."""
    knobs: dict[str, Any] = {}
    for item in spec.split():
        key, sep, value = item.partition("=")
        if not sep or key not in SPEC_KEYS:
            raise ValueError(
                f"arith spec entry {item!r} is not key=value with a key in {', '.join(SPEC_KEYS)}."
            )
        if key in ("k", "d", "mul_factors"):
            knobs[key] = parse_int_list(key, value)
        elif key in ("n", "seed", "max_value"):
            knobs[key] = int(value) if value.lstrip("-").isdigit() else value
        elif key == "words_fraction":
            knobs[key] = float(value)
        else:
            knobs[key] = value
    if not isinstance(knobs.get("n", 0), int) or not isinstance(knobs.get("seed", 0), int):
        raise ValueError(f"arith spec {spec!r}: n and seed must be integers.")
    return knobs


def prepare(path: str, spec: str) -> None:
    """Writes the problems `spec` describes (parse_spec) to the JSONL file `path` unless it
    is already there: the `data.prepare` hook of configs (configs/arith.py). A sidecar
    `path.spec` records the spec; a file made from another spec (or not by this function)
    is a ValueError rather than being overwritten."""
    knobs = parse_spec(spec)
    canonical = " ".join(f"{k}={v}" for k, v in sorted(knobs.items()))
    sidecar = f"{path}.spec"
    if os.path.exists(path):
        made = None
        if os.path.exists(sidecar):
            with open(sidecar) as f:
                made = f.read().strip()
        if made != canonical:
            raise ValueError(
                f"{path!r} exists but was not made from the arith spec {canonical!r}; "
                "delete it or choose another data.path."
            )
        return
    n = knobs.pop("n", 1000)
    seed = knobs.pop("seed", 0)
    problems = generate(n, seed=seed, **knobs)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(f"{sidecar}.tmp", "w") as f:  # the spec first: a kill before the data is
        f.write(canonical + "\n")  # written leaves no file to refuse on the re-run
    os.replace(f"{sidecar}.tmp", sidecar)
    write_jsonl(problems, path)


# --------------------------------------------------------------------------------- CLI


def parse_int_list(name: str, text: str) -> list[int]:
    """`1-6`, `1,2` or `1-3,7` as a list of ints; ValueError naming the flag otherwise."""
    out = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part, re.ASCII)
        if not m or (m.group(2) and int(m.group(2)) < int(m.group(1))):
            raise ValueError(
                f"--{name}={text!r} is not a list of integers or ranges like 1-6 or 1,3,5."
            )
        if int(m.group(2) or m.group(1)) > MAX_LISTED:
            raise ValueError(f"--{name}={text!r}: values above {MAX_LISTED} are not supported.")
        out.extend(range(int(m.group(1)), int(m.group(2) or m.group(1)) + 1))
    return out


def main(argv: Sequence[str]) -> int:
    """Writes --n problems to --output; 2 with one `error: ...` line for a bad flag."""
    from absl import flags  # a private FlagValues: importing this module defines no flags

    fv = flags.FlagValues()
    flags.DEFINE_string("output", None, "JSONL file to write.", flag_values=fv)
    flags.DEFINE_integer("n", 1000, "Number of problems.", flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Random seed.", flag_values=fv)
    flags.DEFINE_string("k", "1-6", "Steps per problem: 1-6, 1,3,5, ... (1..8).", flag_values=fv)
    flags.DEFINE_string("d", "1,2", "Operand digits: 1, 2 or 1,2.", flag_values=fv)
    flags.DEFINE_string("ops", OPS, "Operators, e.g. +- or +-*.", flag_values=fv)
    flags.DEFINE_string("style", "terse", "terse or words.", flag_values=fv)
    flags.DEFINE_float("words_fraction", None, "Mix: P(words); replaces --style.", flag_values=fv)
    flags.DEFINE_integer("max_value", 999, "Chains stay within [0, max_value].", flag_values=fv)
    flags.DEFINE_string("mul_factors", "2,3", "Factors of `*` steps.", flag_values=fv)
    flags.DEFINE_bool("help", False, "Show this help.", flag_values=fv)
    try:
        extra = fv(list(argv))[1:]
        if extra:
            raise ValueError(f"unexpected argument {extra[0]!r}; every option is a --flag.")
        if fv.help:
            print(fv.get_help())
            return 0
        if not fv.output:
            raise ValueError("--output is required: the JSONL file to write.")
        problems = generate(
            fv.n,
            seed=fv.seed,
            k=parse_int_list("k", fv.k),
            d=parse_int_list("d", fv.d),
            ops=fv.ops,
            style=fv.style,
            words_fraction=fv.words_fraction,
            max_value=fv.max_value,
            mul_factors=parse_int_list("mul_factors", fv.mul_factors),
        )
        write_jsonl(problems, fv.output)
    except (flags.Error, ValueError, OSError) as e:
        lines = [line for line in str(e).splitlines() if line.strip()]
        print(f"error: {lines[-1] if lines else type(e).__name__}", file=sys.stderr)
        return 2
    print(f"wrote {len(problems)} problems to {fv.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
