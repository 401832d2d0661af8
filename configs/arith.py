"""The arithmetic base policy pi0 ('arith-base'): a byte-level decoder trained from
scratch on gold step-by-step solutions of the arithmetic task family (data/arith.py),
k = 1..6 steps, 1- and 2-digit operands, 90 % terse / 10 % word problems. Papers that
post-train on arithmetic (ReST^EM, test-time compute) start from this run via
`train.init_from`.

    python -m experiments.arith.base --workdir=runs/arith_base   # trains, then gates it
    python -m framework.main --config=configs/arith.py --workdir=runs/arith_base

The training JSONL is generated on first use (`data.prepare='data.arith'`) into
`data_dir` (default runs/data). Arguments (`--config=configs/arith.py:size=s,steps=1500`):
  size      tiny (tests) | s (default; 128 wide, 2 layers) | m (192 wide, 4 layers)
  steps     training steps (default: the size's budget)
  n         training problems (default 120,000: about one pass at size s)
  seed      generator and training seed (default 0)
  k, d      steps and operand digits of the training problems (default 1-6 and 1,2)
  data_dir  where the generated JSONL goes
Loss is on the solution only (the examples format), not on the question.
"""

from framework.config import ConfigError, parse_arg
from framework.tasks import lm

SIZES = {
    # d_model, num_layers, num_heads, d_ff, batch, steps, seq_len
    "tiny": (64, 2, 2, 256, 8, 100, 128),  # for tests: 1-2 step problems (k=1-2 in arg)
    "s": (128, 2, 4, 512, 32, 1200, 256),
    "m": (192, 4, 4, 768, 32, 1200, 256),
}
K_TRAIN = "1-6"  # k = 7, 8 are never trained: the hardest levels of the test sets


def data_spec(n: int, seed: int, k: str = K_TRAIN, d: str = "1,2") -> str:
    """The generator spec (data.arith.parse_spec) of pi0's training problems."""
    return f"n={n} seed={seed} k={k} d={d} ops=+-* words_fraction=0.1"


def get_config(arg: str | None = None):
    """The base policy's config."""
    arg = parse_arg(
        arg, size="s", steps=0, n=120_000, seed=0, data_dir="runs/data", k=K_TRAIN, d="1,2"
    )
    if arg.size not in SIZES:
        raise ConfigError(f"size={arg.size!r} is unknown; choose one of {sorted(SIZES)}.")
    d, layers, heads, ff, batch, steps, seq_len = SIZES[arg.size]
    steps = arg.steps or steps
    c = lm.default_config()
    c.seed = arg.seed
    c.model.update(dict(d_model=d, num_layers=layers, num_heads=heads, d_ff=ff, max_len=256))
    c.data.update(
        dict(
            format="examples",
            path=f"{arg.data_dir}/arith_base_n{arg.n}_seed{arg.seed}_k{arg.k}_d{arg.d}.jsonl",
            prepare="data.arith",
            prepare_spec=data_spec(arg.n, arg.seed, arg.k, arg.d),
            seq_len=seq_len,  # k=6 word problems reach ~220 bytes; terse ones pack 3-4 a row
            val_fraction=0.02,
        )
    )
    c.train.update(
        dict(
            batch_size=batch,
            total_steps=steps,
            log_every_steps=max(1, steps // 20),
            eval_every_steps=max(1, steps // 5),
            checkpoint_every_steps=max(1, steps // 5),
        )
    )
    c.evals.val.num_batches = 8
    c.optimizer.update(dict(lr=3e-3, weight_decay=0.1))
    c.schedule.update(dict(warmup_steps=max(1, steps // 20), final_lr_fraction=0.1))
    return c
