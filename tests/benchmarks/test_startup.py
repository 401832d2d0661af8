"""benchmarks/startup.py: import times parsed from `python -X importtime`, ranked."""

from __future__ import annotations

import re

from tests.benchmarks import load_benchmark


def load_startup():
    return load_benchmark("startup")


def test_import_times_name_the_module_and_its_dependencies():
    times = load_startup().import_times("json")
    own, cumulative = times["json"]
    assert 0 <= own <= cumulative
    assert "json.decoder" in times  # imported by json, so inside its cumulative time
    assert times["json.decoder"][1] <= cumulative


def test_the_report_gives_the_total_and_the_top_modules(capsys):
    load_startup().main(["--repeats=1", "--module=json", "--top=2"])
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"import json: \d+\.\d\d s \(median of 1 fresh processes\)", lines[0])
    assert len(lines) == 4 and all(re.fullmatch(r"\s+\d+\.\d{3} s  \S+", x) for x in lines[2:])
