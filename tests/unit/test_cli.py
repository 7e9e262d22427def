"""The `crmlens` command: help for everything, clear errors, exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from crmlens.cli import build_parser, main

COMMANDS = ["demo", "validate", "summary", "docs", "params", "i18n", "run", "diff", "notify", "dashboard"]


def test_every_command_is_tested_here():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert sorted(sub.choices) == sorted(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert f"crmlens {command}" in out and len(out.splitlines()) > 3


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "validate" in capsys.readouterr().out


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "crmlens.cli", "--help"], capture_output=True, text=True, check=True)
    assert "demo" in out.stdout


def test_missing_source_folder_is_a_clear_error(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert main(["validate", "--source", str(missing)]) == 1
    err = capsys.readouterr().err
    assert "SourceError" in err and str(missing) in err and "does not exist" in err


def test_folder_without_canonical_files_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "deals.csv").write_text("a,b\n1,2\n")
    assert main(["summary", "--source", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "no canonical table files" in err and "--mapping" in err


def test_unusable_table_makes_validate_exit_1(tmp_path, capsys):
    (tmp_path / "regions.csv").write_text("region_id,name\nEast,East\n")  # country missing
    assert main(["validate", "--source", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "unusable" in out and "country" in out


def test_validate_out_writes_report_and_rejected_rows(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    (src / "regions.csv").write_text("region_id,name,country\nEast,East,CN\nEast,Dup,CN\n")
    out = tmp_path / "out"
    assert main(["validate", "--source", str(src), "--out", str(out)]) == 0
    import json

    import pandas as pd

    report = json.loads((out / "report.json").read_text())
    assert report["tables"]["regions"]["rejected"] == 1
    rejected = pd.read_parquet(out / "rejected" / "regions.parquet")
    assert rejected["name"].tolist() == ["Dup"] and "duplicate key" in rejected["_reasons"].iloc[0]
