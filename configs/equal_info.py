"""Equal-Info Windows at CPU scale: M1, a byte LM on Python sources, and M2, an LM over
the tokens of text compressed by a method (experiments/equal_info/methods.py).

    python -m framework.main --config=configs/equal_info.py:variant=cpu,stage=m1 \\
        --workdir=runs/eqinfo_m1
    python -m framework.main --config=configs/equal_info.py:variant=cpu,stage=m2,method=eq16,\\
tokens_dir=runs/eqinfo/tokens --workdir=runs/eqinfo_m2_eq16

The experiment (`python -m experiments.equal_info.run`) trains M1, compresses the
corpus with every method (experiments/equal_info/compress.py) and trains M2 on each.
Arguments:
  variant     tiny (tests) | cpu (default) | cpu_bos (cpu, M1 with BOS on every row) |
              cpu_4mb (cpu on 4 MB of training text; M2 also on eq64, eq128, eq16_65k)
  stage       m1 | m2
  method      m2: the token files' method (bytes, sp, gzip, static_ac, ac, eq16, eq32,
              eq64, eq128, and each *_65k for 16-bit tokens)
  tokens_dir  m2: compress.py's output; the method's files are TOKENS_DIR/METHOD/{train,val}
  data_dir    m1: where the corpus is written (default runs/data)
  steps       training steps (0 = the variant's); seed
M1 reads the Python standard library's sources (data/pycorpus.py), validation 1 file
in 20 (by a hash of its path). Shapes follow the paper's "3m" M1 and "25m" M2 scaled
down (d_model 128 and 64); the MLP is the framework's SwiGLU, not the paper's ReLU.
`cpu` trains M2 on the 8-bit methods only: at d_model 64 a 65,536-way softmax costs ~17x
the rest of M2.
"""

from experiments.equal_info import methods as methods_lib
from experiments.equal_info.methods import SP_VOCAB
from framework.config import ConfigError, parse_arg
from framework.sweep import product
from framework.tasks import lm

VARIANTS = {
    # shape and schedule of M1 and M2; corpus MB
    "tiny": dict(
        m1=dict(d=32, layers=2, heads=2, ff=64, seq=64, batch=8, steps=20, lr=3e-3),
        m2=dict(d=32, layers=2, heads=2, ff=64, seq=32, batch=8, steps=20, lr=3e-3),
        corpus_mb=0.25,
    ),
    "cpu": dict(
        m1=dict(d=128, layers=3, heads=4, ff=512, seq=256, batch=16, steps=1000, lr=3e-3),
        m2=dict(d=64, layers=4, heads=4, ff=256, seq=256, batch=16, steps=1000, lr=3e-3),
        corpus_mb=12,
    ),
}  # fmt: skip
# cpu_bos: the cpu shapes with the paper's M1 convention, BOS before every training row
# (data.bos_every_row), and EqualInfoAC's first byte coded by M1 after BOS (Q6's test).
VARIANTS["cpu_bos"] = dict(VARIANTS["cpu"], m1_bos=True)
# cpu_4mb: the cpu shapes; every method compressed from 4 MB of training text instead of
# 1.5 MB (fewer repeats of the 16-bit tokens in M2's budget), M2 also on eq64, eq128 and
# eq16_65k.
VARIANTS["cpu_4mb"] = VARIANTS["cpu"]
TINY_METHODS = ("bytes", "ac", "eq16")
CPU_METHODS = ("bytes", "sp", "gzip", "static_ac", "ac", "eq16", "eq32")
DEFAULT_METHODS = {
    "tiny": TINY_METHODS,
    "cpu": CPU_METHODS,
    "cpu_bos": ("eq16", "eq32", "eq64"),
    "cpu_4mb": (*CPU_METHODS, "eq64", "eq128", "eq16_65k"),
}


def _arg(arg: str | None):
    a = parse_arg(
        arg, variant="cpu", stage="m1", method="eq16", tokens_dir="", data_dir="runs/data",
        steps=0, seed=0, methods="",
    )  # fmt: skip
    if a.variant not in VARIANTS:
        raise ConfigError(f"variant={a.variant!r} is unknown; choose one of {sorted(VARIANTS)}.")
    if a.stage not in ("m1", "m2"):
        raise ConfigError(f"stage={a.stage!r} is unknown; choose m1 or m2.")
    try:
        methods_lib.get(a.method)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if a.stage == "m2" and not a.tokens_dir:
        raise ConfigError("stage=m2 needs tokens_dir=DIR (experiments/equal_info/compress.py).")
    return a


def corpus_dir(data_dir: str, variant: str) -> str:
    """The pycorpus folder (train/, val/) of a variant."""
    return f"{data_dir}/pycorpus_{VARIANTS[variant]['corpus_mb']}mb"


def get_config(arg: str | None = None):
    """M1 or M2 of one method (module docstring)."""
    a = _arg(arg)
    v = VARIANTS[a.variant]
    s = v[a.stage]
    c = lm.default_config()
    c.seed = a.seed
    c.model.update(dict(d_model=s["d"], num_layers=s["layers"], num_heads=s["heads"]))
    c.model.update(dict(d_ff=s["ff"], max_len=s["seq"], position="rope"))
    if a.stage == "m1":
        corpus = corpus_dir(a.data_dir, a.variant)
        c.data.update(dict(path=f"{corpus}/train", prepare="data.pycorpus"))
        c.data.prepare_spec = f"train_mb={v['corpus_mb']},val_mb={v['corpus_mb'] / 16}"
        c.data.bos_every_row = v.get("m1_bos", False)
    else:
        m = methods_lib.get(a.method)
        vocab = m.vocab(SP_VOCAB[a.variant])
        tokens = f"{a.tokens_dir}/{m.name}"
        c.data.update(dict(format="tokens", path=f"{tokens}/train", val_path=f"{tokens}/val"))
        c.data.tokens_vocab_size = vocab
        c.model.vocab_size = vocab
    c.data.seq_len = s["seq"]
    steps = a.steps or s["steps"]
    c.train.update(
        dict(
            batch_size=s["batch"],
            total_steps=steps,
            log_every_steps=max(1, steps // 20),
            eval_every_steps=max(1, steps // 5),
            # M2 keeps 5 checkpoints: the per-position-in-window loss is read off each
            checkpoint_every_steps=max(1, steps // 5),
            keep_checkpoints=6,
            plot_losses=a.variant != "tiny",
        )
    )
    c.evals.val.num_batches = 4 if a.variant == "tiny" else (16 if a.stage == "m1" else 0)
    c.optimizer.lr = s["lr"]
    c.optimizer.weight_decay = 0.1
    c.schedule.warmup_steps = max(1, steps // 20)
    c.schedule.final_lr_fraction = 0.1
    return c


def get_sweep(arg: str | None = None) -> list[dict]:
    """stage=m2: one run per method of the variant (or methods=a+b+...); stage=m1: one."""
    a = _arg(arg)
    if a.stage == "m1":
        return [{}]
    methods = a.methods.split("+") if a.methods else list(DEFAULT_METHODS[a.variant])
    return product({"arg:method": methods})
