"""The command line: `python -m framework.main --config=configs/x.py[:args] --workdir=DIR`.

`--config.a.b=value` overrides any config value. The config is validated
and frozen before any work; a user error (unknown key, bad value, missing
file) prints one line `error: ...` and exits with code 2, writing nothing.
Exit codes: 0 done (or stopped by SIGTERM after saving; a SIGTERM before
training started ends with nothing trained), 2 user error, 3 diverged (NaN/Inf),
1 disk full (one line) or a crash (traceback).
"""

from __future__ import annotations

from framework import preemption

preemption.install_early()  # a SIGTERM while JAX imports or the step compiles: exit 0

import os  # noqa: E402
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402

import ml_collections  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from framework import config as config_lib, launch  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file, optionally with ':key=value,...' arguments.", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and results.")
_DRY_RUN = flags.DEFINE_bool(
    "dry_run",
    False,
    "Build the model abstractly, compile the train step for the configured mesh, print "
    "parameters, FLOPs per step and compiled memory per device, and exit; allocates nothing.",
)
_RESTART = flags.DEFINE_bool(
    "restart",
    False,
    "Start over: move the workdir's files into WORKDIR/superseded/<time>/ (nothing is "
    "deleted) and train from step 0.",
)
_EVAL_ONLY = flags.DEFINE_bool(
    "eval_only",
    False,
    "Run config.evals on the workdir's newest checkpoint and merge them into result.json.",
)
_HOST_DEVICES = flags.DEFINE_integer(
    "host_devices",
    0,
    "Emulate N CPU devices (XLA's host platform), e.g. to dry-run a mesh larger than this machine.",
)
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address",
    os.environ.get("JAX_COORDINATOR_ADDRESS"),
    "host:port of process 0, for multi-process runs (env JAX_COORDINATOR_ADDRESS).",
)
_NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes", int(os.environ.get("JAX_NUM_PROCESSES", "1")), "Processes in the run."
)
_PROCESS_ID = flags.DEFINE_integer(
    "process_id", int(os.environ.get("JAX_PROCESS_ID", "0")), "This process's index."
)
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed",
    False,
    "Call jax.distributed.initialize() with cluster auto-detection (TPU pods, SLURM).",
)

EXIT_USER_ERROR = launch.EXIT_USER_ERROR
EXIT_DIVERGED = launch.EXIT_DIVERGED


def user_error(message: str) -> None:
    """Prints one line naming the problem and exits with code 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(EXIT_USER_ERROR)


def parse_flags(argv: Sequence[str]) -> list[str]:
    """absl flag parsing that turns config mistakes into one-line errors (exit 2)."""
    overrides = [a.split("=", 1)[0][len("--config.") :] for a in argv if a.startswith("--config.")]
    base = [a for a in argv if not a.startswith("--config.")]
    path = _config_path(base)
    try:
        if path is not None:
            config_lib.check_config_file(path)
    except config_lib.ConfigError as e:
        user_error(str(e))
    saved_argv = sys.argv
    try:
        # config_flags reads overrides from sys.argv itself: hide them for a first
        # parse that loads the config file alone, to check override keys against it.
        sys.argv = base
        flags.FLAGS(base)
        sys.argv = saved_argv
        if flags.FLAGS.config is None:
            user_error("--config is required, e.g. --config=configs/quickstart.py")
        config_lib.check_override_keys(flags.FLAGS.config, overrides)
        flags.FLAGS.unparse_flags()
        return flags.FLAGS(list(argv))
    except config_lib.ConfigError as e:
        user_error(str(e))
    except (flags.Error, OSError, AttributeError, KeyError, TypeError) as e:
        lines = [line for line in str(e).splitlines() if line.strip()]
        user_error(lines[-1] if lines else type(e).__name__)
    finally:
        sys.argv = saved_argv
    raise AssertionError  # unreachable


def _config_path(argv: Sequence[str]) -> str | None:
    """The FILE of --config=FILE[:arg] in argv (None when absent)."""
    for i, a in enumerate(argv):
        value = a[len("--config=") :] if a.startswith("--config=") else None
        if a == "--config" and i + 1 < len(argv):
            value = argv[i + 1]
        if value is not None:
            return value.split(":", 1)[0]
    return None


def main(argv: Sequence[str]) -> None:
    """Validates the config, then trains."""
    del argv
    from framework import dry_run, metrics, trainer  # imported late: keeps `--help` fast

    metrics.quiet_library_logs()
    start_processes()

    if not _WORKDIR.value:
        user_error("--workdir is required: the directory for checkpoints and logs.")
    if _DRY_RUN.value:
        try:
            config = ml_collections.FrozenConfigDict(_CONFIG.value)
            runner = trainer.Trainer(config, _WORKDIR.value, abstract=True)
        except (config_lib.ConfigError, FileNotFoundError, ValueError) as e:
            user_error(launch.first_line(e))
        dry_run.print_dry_run(runner)
        return
    outcome = launch.run(
        _CONFIG.value, _WORKDIR.value, eval_only=_EVAL_ONLY.value, restart=_RESTART.value
    )
    if outcome.message:
        print(outcome.message, file=sys.stderr)
    result = outcome.result
    if result is not None and not _EVAL_ONLY.value:
        logging.info(
            "%s at step %d in %.1f s; workdir %s",
            result["status"],
            result["step"],
            result["wall_time_s"],
            os.path.abspath(_WORKDIR.value),
        )
    if outcome.code == launch.EXIT_CRASH:  # disk full: skip exit handlers whose failing
        sys.stdout.flush()  # writes (TensorBoard's thread) would bury the one line above
        sys.stderr.flush()
        os._exit(outcome.code)
    if outcome.code:
        sys.exit(outcome.code)


def start_processes() -> None:
    """Emulated CPU devices and jax.distributed, as the flags ask; before any device use."""
    import jax  # already imported by the config file; no backend has started yet

    if _HOST_DEVICES.value:
        jax.config.update("jax_platforms", "cpu")
        jax.config.update("jax_num_cpu_devices", _HOST_DEVICES.value)

    if _NUM_PROCESSES.value > 1:
        if not _COORDINATOR.value:
            user_error("--num_processes > 1 needs --coordinator_address=HOST:PORT of process 0.")
        if (jax.config.jax_platforms or os.environ.get("JAX_PLATFORMS", "")) == "cpu":
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(
            coordinator_address=_COORDINATOR.value,
            num_processes=_NUM_PROCESSES.value,
            process_id=_PROCESS_ID.value,
        )
    elif _DISTRIBUTED.value:
        jax.distributed.initialize()
    if jax.process_index() != 0:
        logging.set_verbosity(logging.WARNING)  # one progress log, from process 0


def run() -> None:
    """Entry point."""
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
