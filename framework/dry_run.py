"""Dry runs and the memory check: the compiled train step's per-device memory and
FLOPs, compared with what a device has (`--dry_run` prints it; a real run refuses to
start when the step would not fit)."""

from __future__ import annotations

import math
import os
from typing import Any

import jax


def device_memory_limit() -> int | None:
    """Bytes one local device may use: the accelerator's limit, or RAM / devices on CPU."""
    device = jax.local_devices()[0]
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        return stats.get("bytes_limit")
    try:
        ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None
    return ram // jax.local_device_count()


# A shared program's (memory analysis, cost analysis), by its key (framework/programs.py):
# XLA's analyses take ~40 ms a call for a tiny model, each run of an inline sweep asked
# for them again, and a program's analyses never change.
_analyses: dict[str, tuple[Any, dict]] = {}


def _analysis(compiled: Any, program_key: str | None) -> tuple[Any, dict]:
    """(memory_analysis, cost_analysis) of `compiled`, kept under `program_key`."""
    if program_key is not None and program_key in _analyses:
        return _analyses[program_key]
    result = (compiled.memory_analysis(), compiled.cost_analysis() or {})
    if program_key is not None:
        if len(_analyses) >= 256:  # a bound; each entry is small
            _analyses.clear()
        _analyses[program_key] = result
    return result


def memory_report(trainer: Any, compiled: Any, program_key: str | None = None) -> dict[str, Any]:
    """Compiled per-device memory of `trainer`'s train step, and whether it fits.
    `program_key`: the step's key when it is a shared program (its analyses are kept)."""
    stats, cost = _analysis(compiled, program_key)
    per_device = (
        stats.argument_size_in_bytes
        + stats.output_size_in_bytes
        + stats.temp_size_in_bytes
        - stats.alias_size_in_bytes
    )
    limit = device_memory_limit()
    counts = trainer.task.describe_model()
    return {
        "mesh": dict(trainer.mesh.shape),
        "rules": trainer.config.mesh.rules,
        "params": counts.get("params"),
        "flops_per_step_xla": float(cost.get("flops", float("nan"))),
        "flops_per_step_model": _flops_per_item(counts)
        * trainer.task.items_per_example()
        * trainer.batch_size,
        "argument_bytes": stats.argument_size_in_bytes,
        "temp_bytes": stats.temp_size_in_bytes,
        "per_device_bytes": per_device,
        "device_limit_bytes": limit,
        "fits": limit is None or per_device <= limit,
    }


def _flops_per_item(counts: dict[str, Any]) -> float:
    """The task's 'train FLOPs/<item>' count (describe_model), NaN if it gives none."""
    return next((float(v) for k, v in counts.items() if k.startswith("train FLOPs/")), math.nan)


def fit_error(report: dict[str, Any]) -> str:
    """The one-sentence error for a step that does not fit in device memory."""
    return (
        f"the train step needs {report['per_device_bytes'] / 2**30:.2f} GiB per device "
        f"but a device has {report['device_limit_bytes'] / 2**30:.2f} GiB; shard "
        "parameters (mesh.fsdp, mesh.rules=fsdp) or lower train.batch_size "
        "(train.grad_accum_steps keeps the effective batch)."
    )


def print_dry_run(trainer: Any) -> None:
    """Compiles the train step for the configured mesh and prints what it would need."""
    report = memory_report(trainer, trainer.compile_step())
    gib = lambda b: "?" if b is None else f"{b / 2**30:.3f} GiB"
    print(f"mesh {report['mesh']} rules={report['rules']}")
    print(f"parameters            {report['params']:,}")
    model_flops = report["flops_per_step_model"]
    if math.isnan(model_flops):
        print("FLOPs/step (model)    n/a (the task's describe_model counts none)")
    else:
        print(f"FLOPs/step (model)    {model_flops:.4g}")
    print(
        f"FLOPs/step (XLA)      {report['flops_per_step_xla']:.4g}  "
        "(per device, XLA cost analysis: a scanned loop body counts once)"
    )
    print(f"arguments/device      {gib(report['argument_bytes'])}  (params, optimizer, batch)")
    print(f"temporaries/device    {gib(report['temp_bytes'])}")
    print(f"total/device          {gib(report['per_device_bytes'])}")
    print(f"device limit          {gib(report['device_limit_bytes'])}")
    print("fits" if report["fits"] else "DOES NOT FIT: shard more (fsdp) or lower the batch")
