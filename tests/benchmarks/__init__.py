"""Tests of the benchmark scripts (benchmarks/ is not a package: load them by path)."""

from __future__ import annotations

import importlib.util
import os
import types

from tests.conftest import ROOT


def load_benchmark(name: str) -> types.ModuleType:
    """benchmarks/<name>.py as a module."""
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(ROOT, "benchmarks", f"{name}.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
