"""Metric sinks: metrics.jsonl, TensorBoard event files, the progress line,
and the loss-curve PNG. Only process 0 writes.

TensorBoard events are written with tensorboardX because clu's and flax's
writers import TensorFlow, which the pinned stack does not install.
"""

from __future__ import annotations

import contextlib
import json
import logging as py_logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax
import numpy as np
from absl import logging

from framework import files


def reduces_by_max(key: str) -> bool:
    """Whether metric `key` combines by max rather than by (weighted) mean.

    Metrics named '<name>_max' or '<name>_max/<sub>' (e.g. 'attn_logit_max/0') are
    maxima: gradient-accumulation microbatches, log windows and evaluation batches
    take their max. Every other metric is averaged."""
    return key.split("/", 1)[0].endswith("_max")


def accumulate(acc: dict, new: Mapping[str, Any], maximum: Callable = max) -> None:
    """Adds the metrics `new` into the running totals `acc` in place; maxima
    (reduces_by_max) keep the larger value. `maximum`: jnp.maximum for device arrays."""
    for k, v in new.items():
        if k not in acc:
            acc[k] = v
        elif reduces_by_max(k):
            acc[k] = maximum(acc[k], v)
        else:
            acc[k] = acc[k] + v


def finalize(acc: Mapping[str, Any], denom: Any) -> dict[str, Any]:
    """Running totals to means (totals / denom); maxima stay as they are."""
    return {k: v if reduces_by_max(k) else v / denom for k, v in acc.items()}


class MetricWriter:
    """Appends scalars to `<workdir>/metrics.jsonl` and TensorBoard `<workdir>/tb`."""

    def __init__(self, workdir: str):
        self.enabled = jax.process_index() == 0
        self.path = os.path.join(workdir, "metrics.jsonl")
        self._tb = None
        if self.enabled:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(os.path.join(workdir, "tb"))

    def write(self, step: int, split: str, metrics: Mapping[str, float]) -> None:
        """Records `metrics` of `split` ('train', or an evaluator's name) at `step`."""
        if not self.enabled:
            return
        row = {"step": int(step), "split": split, "time": time.time()}
        row.update({k: _to_float(v) for k, v in metrics.items()})
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        for k, v in metrics.items():
            self._tb.add_scalar(f"{split}/{k}", _to_float(v), int(step))

    def flush(self) -> None:
        """Flushes TensorBoard events."""
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        """Flushes and closes the writers."""
        if self._tb is not None:
            self._tb.close()
            self._tb = None


_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _OwnInfoOnly(py_logging.Filter):
    """Keeps INFO lines from this repository's code; libraries show warnings and up."""

    def filter(self, record: py_logging.LogRecord) -> bool:
        path = record.pathname
        ours = path.startswith(_REPO) and "site-packages" not in path
        if "Metadata file does not exist" in str(record.msg):
            return False  # orbax, when the checkpointer reads an item's metadata
        return record.levelno >= py_logging.WARNING or ours


def quiet_library_logs() -> None:
    """Hides orbax's and jax's INFO chatter from the progress output."""
    from absl import logging as absl_logging

    handler = absl_logging.get_absl_handler()
    if not any(isinstance(f, _OwnInfoOnly) for f in handler.filters):
        handler.addFilter(_OwnInfoOnly())
    root = py_logging.getLogger()
    # absl falls back to logging.basicConfig() when it logs before app.run: that plain
    # stderr handler would print every library INFO line unfiltered next to ours.
    for h in [h for h in root.handlers if type(h) is py_logging.StreamHandler]:
        root.removeHandler(h)
    absl_logging.use_absl_handler()
    absl_logging.set_verbosity(absl_logging.INFO)


def _to_float(v) -> float:
    v = float(np.asarray(v))
    return v


def read_metrics(workdir: str) -> list[dict]:
    """Rows of `<workdir>/metrics.jsonl` (empty if none; a line cut by a kill is skipped)."""
    return files.read_jsonl(os.path.join(workdir, "metrics.jsonl"))


def truncate_metrics(workdir: str, step: int) -> None:
    """Keeps the metrics.jsonl rows a run resumed at `step` will not log again: rows of
    earlier steps and the train row of `step` itself. Evaluations at `step` (due right
    after its checkpoint, maybe cut off by the interruption) and the end-of-run
    '<evaluator>@best' rows are dropped; the resumed run logs them again."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return
    with open(path) as f:
        lines = [line for line in f if line.strip()]
    kept = []
    for line in lines:
        try:
            row = json.loads(line)
            split, row_step = row["split"], row["step"]
        except (ValueError, KeyError, TypeError):  # a line cut short by a kill
            continue
        if split.endswith("@best"):
            continue
        if row_step < step or (row_step == step and split == "train"):
            kept.append(line)
    if len(kept) != len(lines):
        files.atomic_write_text(path, "".join(kept))


def format_metrics(metrics: dict[str, float]) -> str:
    """'a 1.234, b 5.678': the metrics sorted by name, 4 significant digits."""
    return ", ".join(f"{k} {v:.4g}" for k, v in sorted(metrics.items()))


def format_duration(seconds: float) -> str:
    """'1:02:03'-style duration."""
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _si(x: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.1f}{unit}"
    return f"{x:.1f}"


def progress_line(
    step: int,
    total: int,
    metrics: Mapping[str, float],
    steps_per_s: float,
    items_per_s: float,
    items: str,
) -> str:
    """One line: step, loss, speed, throughput and ETA."""
    eta = (total - step) / steps_per_s if steps_per_s > 0 else float("nan")
    parts = [f"step {step}/{total}"]
    for key in ("loss", "grad_norm", "learning_rate"):
        if key in metrics:
            parts.append(f"{key} {metrics[key]:.4g}")
    parts += [
        f"{steps_per_s:.2f} steps/s",
        f"{_si(items_per_s)} {items}/s",
        f"ETA {format_duration(eta) if np.isfinite(eta) else '?'}",
    ]
    return " | ".join(parts)


def plot_losses(workdir: str, out_name: str = "loss.png") -> str | None:
    """Plots train loss and every eval loss in metrics.jsonl to a PNG."""
    rows = read_metrics(workdir)
    if not rows or jax.process_index() != 0:
        return None
    # The object API with fixed margins, not pyplot + tight_layout: no global figure
    # state (inline sweep points share the process) and about half the time per plot.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    fig.subplots_adjust(left=0.12, right=0.97, top=0.92, bottom=0.12)
    ax = fig.add_subplot()
    for split in sorted({r["split"] for r in rows}):
        pts = [(r["step"], r["loss"]) for r in rows if r["split"] == split and "loss" in r]
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, label=split, marker="o" if split != "train" else None)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(os.path.basename(os.path.abspath(workdir)))
    ax.grid(alpha=0.3)
    ax.legend()
    path = os.path.join(workdir, out_name)
    fig.savefig(path, dpi=100)
    return path


class DivergedError(RuntimeError):
    """The loss or gradient norm became NaN/Inf (args: the step)."""


_ROW_KEYS = ("step", "split", "time")


class TrainLog:
    """Host-side train metrics: each step's metrics are fetched one step late (so the
    host never waits for the step it just dispatched), averaged over log windows,
    written as rows and printed as the progress line. Raises DivergedError for a step
    whose metrics say it was not finite.

    `history` (metrics.jsonl rows kept by a resumed run) supplies the run's first loss
    and its last train window, so a resumed run's result reports the whole run."""

    def __init__(
        self,
        writer: MetricWriter,
        total: int,
        log_every: int,
        items_per_step: int,
        items_name: str,
        history: list[dict] = (),
    ):
        self.writer, self.total, self.log_every = writer, total, log_every
        self.items_per_step, self.items_name = items_per_step, items_name
        train = sorted((r for r in history if r.get("split") == "train"), key=lambda r: r["step"])
        self.first_loss = train[0].get("loss") if train else None
        self.last: dict[str, float] = (
            {k: v for k, v in train[-1].items() if k not in _ROW_KEYS} if train else {}
        )
        self._window: dict[str, float] = {}
        self._window_steps = 0
        self._window_start: float | None = None
        self._pending: tuple[int, Any] | None = None
        self.t_start = time.time()
        self.first_time: float | None = None  # when the first (compiling) step finished
        self.paused_s = 0.0
        self.steps = 0

    def push(self, step: int, metrics: Any) -> None:
        """Takes step `step`'s (device) metrics; handles the previous step's."""
        self.steps += 1
        self.flush()
        self._pending = (step, metrics)

    def flush(self) -> None:
        """Handles the pending step's metrics now (before a checkpoint or evaluation)."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self._consume(*pending)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Time spent inside (checkpoints, evaluations) is left out of the speeds."""
        t0 = time.time()
        try:
            yield
        finally:
            paused = time.time() - t0
            self.paused_s += paused
            if self._window_start is not None:
                self._window_start += paused

    def steps_per_s(self, end: float) -> float | None:
        """Training steps per second after the first (compiling) step, pauses excluded."""
        if self.first_time is None or self.steps <= 1:
            return None
        return (self.steps - 1) / (end - self.first_time - self.paused_s)

    def _consume(self, step: int, metrics: Any) -> None:
        m = {k: float(v) for k, v in jax.device_get(metrics).items()}
        if not m.pop("finite"):
            raise DivergedError(step)
        if self.first_loss is None:
            self.first_loss = m["loss"]
        if self._window_start is None:  # the first step includes compilation
            self._window_start = self.first_time = time.time()
            self.writer.write(step, "train", m)
            logging.info(
                "step %d/%d | loss %.4g | first step took %.1f s (not in the speeds)",
                step,
                self.total,
                m["loss"],
                self._window_start - self.t_start,
            )
            return
        accumulate(self._window, m)
        self._window_steps += 1
        if step % self.log_every == 0 or step == self.total:
            mean = finalize(self._window, self._window_steps)
            elapsed = time.time() - self._window_start
            rate = self._window_steps / elapsed if elapsed > 0 else 0.0
            self.writer.write(step, "train", mean)
            logging.info(
                "%s",
                progress_line(
                    step, self.total, mean, rate, rate * self.items_per_step, self.items_name
                ),
            )
            self.last, self._window, self._window_steps = mean, {}, 0
            self._window_start = time.time()
