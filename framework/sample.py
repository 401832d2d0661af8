"""Sample from a training run's newest checkpoint.

    python -m framework.sample --workdir=runs/quickstart --prompt="Once upon a time" \\
        [--prompt=...] [--temperature=0.8] [--top_k=40] [--top_p=0.95] \\
        [--max_new_tokens=100] [--num_samples=2] [--seed=0] [--stop="\\n"]

The run is rebuilt from its saved config (`config.saved_config`: the task's
`default_config()` updated with the saved values) and its parameters are restored
read-only from the newest readable checkpoint (`checkpoint.restore_params`). A missing
workdir, config or checkpoint prints one line `error: ...` and exits 2.
`sample_from_workdir` is the same as a library call.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from absl import app, flags, logging

EXIT_USER_ERROR = 2

_WORKDIR = flags.DEFINE_string("workdir", None, "A training run's directory.")
_PROMPT = flags.DEFINE_multi_string("prompt", [], "A prompt (repeat the flag for more).")
_TEMPERATURE = flags.DEFINE_float("temperature", 0.8, "Sampling temperature; 0 is greedy.")
_TOP_K = flags.DEFINE_integer("top_k", 0, "Keep the k most likely tokens (0: all).")
_TOP_P = flags.DEFINE_float("top_p", 1.0, "Nucleus sampling mass (1: off).")
_MAX_NEW = flags.DEFINE_integer("max_new_tokens", 100, "Tokens to generate per sample.")
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", 1, "Samples per prompt.")
_SEED = flags.DEFINE_integer("seed", 0, "Random seed.")
_STOP = flags.DEFINE_multi_string("stop", [], "A stop string (repeatable), e.g. '\\n'.")


class SampleError(ValueError):
    """A user error: missing workdir, config or checkpoint."""


def load_run(workdir: str, which: str | int = "latest") -> tuple[Any, Any, Any]:
    """(model, tokenizer, trainer) of a run, with params from its newest checkpoint (or
    `which`: 'best', 'latest' or a step, as checkpoint.restore_params)."""
    from framework import checkpoint, config as config_lib, trainer as trainer_lib

    try:
        config = config_lib.saved_config(workdir)
    except config_lib.ConfigError as e:
        raise SampleError(str(e)) from None
    # Sample on this machine's devices, whatever mesh trained the run (orbax reshards).
    config.mesh.update(dict(data=-1, fsdp=1, expert=1, tensor=1, rules="dp"))
    trainer = trainer_lib.Trainer(config, workdir)
    try:
        params, _ = checkpoint.restore_params(workdir, which, trainer.abstract_state["params"])
    except config_lib.ConfigError as e:
        raise SampleError(str(e)) from None
    return trainer.merge(params), trainer.task.tokenizer, trainer


def sample_from_workdir(
    workdir: str,
    prompts: Sequence[str],
    *,
    temperature: float = 0.8,
    top_k: int = 0,
    top_p: float = 1.0,
    max_new_tokens: int = 100,
    num_samples: int = 1,
    seed: int = 0,
    stop_strings: Sequence[str] = (),
) -> list[str]:
    """Completions (prompt-major: prompt 0's samples first) from a run's newest checkpoint."""
    from framework import sampling

    model, tokenizer, trainer = load_run(workdir)
    state = sampling.prefill(
        model, tokenizer, list(prompts), max_new_tokens=max_new_tokens, mesh=trainer.mesh
    )
    out = sampling.generate(
        model,
        tokenizer,
        sampling.fork(state, num_samples),
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        rng=seed,
        stop_strings=stop_strings,
    )
    return out.texts


def check_flags(
    *, max_new_tokens: int, num_samples: int, temperature: float, top_k: int, top_p: float
) -> str | None:
    """The first flag value that can only be a mistake, as a sentence naming the flag."""
    if max_new_tokens < 1:
        return f"--max_new_tokens={max_new_tokens} must be >= 1 (tokens to generate)."
    if num_samples < 1:
        return f"--num_samples={num_samples} must be >= 1 (samples per prompt)."
    if temperature < 0:
        return f"--temperature={temperature} must be >= 0 (0 is greedy)."
    if top_k < 0:
        return f"--top_k={top_k} must be >= 0 (0 keeps every token)."
    if not 0 < top_p <= 1:
        return f"--top_p={top_p} must be in (0, 1] (1 turns nucleus sampling off)."
    return None


def main(argv: Sequence[str]) -> None:
    """Prints num_samples completions of each prompt."""
    del argv
    from framework import metrics

    metrics.quiet_library_logs()
    logging.set_verbosity(logging.ERROR)  # orbax warns about read-only managers
    if not _WORKDIR.value:
        _user_error("--workdir is required: a training run's directory.")
    problem = check_flags(
        max_new_tokens=_MAX_NEW.value,
        num_samples=_NUM_SAMPLES.value,
        temperature=_TEMPERATURE.value,
        top_k=_TOP_K.value,
        top_p=_TOP_P.value,
    )
    if problem:
        _user_error(problem)
    prompts = _PROMPT.value or [""]
    try:
        texts = sample_from_workdir(
            _WORKDIR.value,
            prompts,
            temperature=_TEMPERATURE.value,
            top_k=_TOP_K.value,
            top_p=_TOP_P.value,
            max_new_tokens=_MAX_NEW.value,
            num_samples=_NUM_SAMPLES.value,
            seed=_SEED.value,
            stop_strings=[s.replace("\\n", "\n").replace("\\t", "\t") for s in _STOP.value],
        )
    except (ValueError, FileNotFoundError) as e:  # SampleError, ConfigError, bad options
        _user_error(str(e).splitlines()[0] if str(e) else type(e).__name__)
    n = _NUM_SAMPLES.value
    for i, text in enumerate(texts):
        print(f"--- prompt {i // n} sample {i % n}: {prompts[i // n]!r}")
        print(prompts[i // n] + text, flush=True)


def _user_error(message: str) -> None:
    """Prints one `error: ...` line and exits with code 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(EXIT_USER_ERROR)


if __name__ == "__main__":
    app.run(main)
