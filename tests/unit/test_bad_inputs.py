"""Bad and unusual inputs against `crmlens validate` and `crmlens run` (issue 16): none crashes (no traceback,
`main` returns an exit status), none slips through (a value that does not fit is rejected or warned, naming it),
and every message names the file/table/column/line/parameter, the value and what to do.

Files
- empty_parquet: a 0-byte Parquet table file: error naming the file and "empty (0 bytes)", exit 1
- truncated_parquet: half a Parquet file: "not a readable Parquet file", exit 1
- truncated_parquet_run: the same through `crmlens run`: exit 1 before any notebook, the file named
- latin1_canonical_csv: a Latin-1 CSV as a canonical table: "not UTF-8", line and byte, how to convert/declare
- unreadable_file: a file without read permission (simulated when root): "permission denied", the file named
- unreadable_file_chmod: the same with chmod 000 (skipped as root, who can read anything)
- table_path_is_folder: regions.csv is a folder: "is a folder, not a file", exit 1 (not "absent")
- source_is_file: --source names a file: "is a file, not a folder"
- mapping_is_folder: --mapping names a folder: "is a folder, not a mapping file"
- mixed_line_endings: CR LF and LF in one file: read, every row accepted
- mixed_line_endings_ragged: mixed line endings and a short line: the line named
- empty_csv: a 0-byte CSV: "empty (0 bytes)", exit 1
- header_only_csv: a header and no rows: loaded 0, a note naming the file
- ragged_too_many: a line with an extra field: its line number and field counts
- ragged_too_few: a line with a missing field: its line number
- bom: a UTF-8 byte-order mark: the first column is read as region_id
- duplicate_header: two columns called name: both named, with their positions
- semicolon_canonical: a ;-separated canonical CSV: read
- header_whitespace: header ' amount ': read as amount, with a note
- header_case: header 'Amount': read as amount, with a note
- header_ambiguous: 'Amount' and 'amount': error naming both
Values
- required_column_empty: a required column present but empty in every row: unusable, exit 1, the column named
- not_finite_amount: inf, -inf, NaN in an amount: each rejected, the value named
- typed_parquet_infinity: an infinite value in a typed Parquet amount: rejected
- thousands_separators: '1,234.50': rejected, the separator hint
- negative_amount: below the minimum: rejected naming the minimum
- future_date: after --as-of: rejected naming the as-of
- day_month_year_date: '31/12/2025': not ISO, the strptime snippet
- impossible_date: '2026-02-30': "impossible date"
- duplicate_key: the second row rejected, naming the first's source row
- unknown_enum: an invoice status outside the list: the allowed values listed
- fk_missing_parent: a region that does not exist: "no regions row"
- fk_rejected_parent: the parent exists but was rejected: "was rejected" with the parent's reason
- huge_value: an 800 kB value: the message cut to 80 characters plus its length
- bad_boolean: 'maybe' as is_active: the accepted words listed
- fractional_integer: '1.5' as an integer: "not a whole number"
Mappings
- mapping_yaml_syntax: a YAML error: its line number
- mapping_missing_file: a files entry naming a missing file: the file and what the folder has
- mapping_missing_column: an unknown source column: the columns available
- mapping_unknown_key: 'encodng': "unknown key"
- mapping_unknown_encoding: encoding: ebcdic: the supported ones listed
- mapping_encoding_declared[latin-1]: encoding: latin-1 reads 'Café'
- mapping_encoding_declared[GB18030]: encoding: gb18030 reads '华东'
- mapping_latin1_undeclared: no encoding: the line, the probable encoding and the files entry to add
- mapping_semicolon_undeclared: a ;-separated file read with ',': the delimiter to add
- mapping_header_case: a mapping naming 'amount' when the header is 'Amount': the exact header suggested
- mapping_try_cast_losses: TRY_CAST nulls of non-empty values: one warning per value with its source row
- maven_unreadable_employees: the shipped Maven mapping: 'many' and '-5' employees rejected, naming the value
Parameters
- as_of_not_a_date: --as-of notadate: exit 2 naming --as-of and the formats
- as_of_impossible: --as-of 2026-02-30: exit 2, "impossible date"
- unknown_table: --tables bogus: exit 2 naming it and listing the tables
- regions_empty: run --regions '': exit 2 naming --regions
- periods_bad: run --periods 2026-Q5: exit 2 naming --periods
- params_wrong_type: --params with fiscal_year_start: abc: exit 2 naming the parameter
- params_unknown_name: --params with an unknown parameter: exit 2 naming it
- path_options_of_the_wrong_kind: --params/--outputs/--out naming a folder/file: exit 2, "is a folder/file"
- max_problems_negative: --max-problems -1: exit 2
Paths
- safe_component: ordinary ids unchanged; traversal and separators mapped to one safe, distinct component
- task_paths_stay_inside: a task for region '../escaped' writes inside the run folder; escaping is refused
- run_with_a_climbing_region_id: the data says region_id "../escaped": the run analyses it in a safe folder and
  writes nothing outside --outputs
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from crmlens.cli import main
from tests.conftest import MAVEN_MAPPING

REGIONS = "region_id,name,country\nEast,East,CN\nWest,West,CN\n"
AS_OF = "2026-10-01"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """`crmlens ARGV` in-process: (exit status, stdout, stderr); a traceback would raise out of here."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def source(tmp_path: Path, **files: str | bytes) -> Path:
    """A folder with `files` (name → text or bytes); names without a suffix get '.csv'."""
    folder = tmp_path / "src"
    folder.mkdir(exist_ok=True)
    for name, content in files.items():
        path = folder / (name if "." in name else f"{name}.csv")
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8", newline="")
    return folder


def validate(capsys, folder: Path, *extra: str) -> tuple[int, dict, str]:
    """`crmlens validate --json` of a folder: (exit status, the JSON report, stderr)."""
    code, out, err = run(capsys, "validate", "--source", folder, "--json", "--as-of", AS_OF, "--max-problems", "0",
                         *extra)
    report = json.loads(out) if out.strip() else {}
    for rep in report.get("tables", {}).values():
        if rep["status"] != "absent":
            assert rep["loaded"] == rep["accepted"] + rep["rejected"]
    return code, report, err


def problems(report: dict, table: str, rule: str | None = None) -> list[dict]:
    return [p for p in report["problems"] if p["table"] == table and (rule is None or p["rule"] == rule)]


def payments(amounts: list[str], received: list[str] | None = None) -> str:
    received = received or ["2026-01-05"] * len(amounts)
    rows = [f"p{i + 1},c1,{r},{a}" for i, (a, r) in enumerate(zip(amounts, received, strict=True))]
    return "payment_id,contract_id,received_at,amount\n" + "\n".join(rows) + "\n"


def counts(report: dict, table: str) -> tuple[int, int, int, str]:
    t = report["tables"][table]
    return t["loaded"], t["accepted"], t["rejected"], t["status"]


# ------------------------------------------------------------------------------------------------- files

def test_empty_parquet(tmp_path, capsys):
    folder = source(tmp_path, regions=REGIONS, **{"accounts.parquet": b""})
    code, _, err = validate(capsys, folder)
    assert code == 1
    assert "table accounts" in err and "accounts.parquet" in err and "empty (0 bytes)" in err
    assert "export it again" in err


def _parquet_bytes(tmp_path: Path) -> bytes:
    frame = pd.DataFrame({"account_id": [f"a{i}" for i in range(50)], "name": ["n"] * 50})
    path = tmp_path / "whole.parquet"
    frame.to_parquet(path)
    return path.read_bytes()


def test_truncated_parquet(tmp_path, capsys):
    whole = _parquet_bytes(tmp_path)
    folder = source(tmp_path, regions=REGIONS, **{"accounts.parquet": whole[: len(whole) // 2]})
    code, _, err = validate(capsys, folder)
    assert code == 1
    assert "accounts.parquet" in err and "not a readable Parquet file" in err and "truncated" in err


def test_truncated_parquet_run(tmp_path, capsys):
    whole = _parquet_bytes(tmp_path)
    folder = source(tmp_path, regions=REGIONS, **{"accounts.parquet": whole[:100]})
    code, _, err = run(capsys, "run", "--source", folder, "--notebooks", "00_*", "--outputs", tmp_path / "out",
                       "--no-progress", "--exports", "none")
    assert code == 1
    assert "accounts.parquet" in err and "not a readable Parquet file" in err
    assert not list((tmp_path / "out").rglob("*.ipynb"))


def test_latin1_canonical_csv(tmp_path, capsys):
    text = "account_id,name\na1,Acme\na2,Café Müller\n"
    folder = source(tmp_path, accounts=text.encode("latin-1"))
    code, _, err = validate(capsys, folder)
    assert code == 1
    assert "accounts.csv is not UTF-8 text: line 3, byte 30 (0xE9)" in err
    assert "latin-1" in err and "iconv" in err and "encoding:" in err


def test_unreadable_file(tmp_path, capsys, monkeypatch):
    """As root every file is readable: the permission error is simulated where the file is opened."""
    folder = source(tmp_path, regions=REGIONS, accounts="account_id,name\na1,Acme\n")
    locked = folder / "accounts.csv"
    real_open = Path.open

    def guarded(self, *args, **kwargs):
        if self == locked:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", guarded)
    code, _, err = validate(capsys, folder)
    assert code == 1
    assert "table accounts" in err and str(locked) in err and "permission denied" in err and "chmod" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read a file whatever its permissions")
def test_unreadable_file_chmod(tmp_path, capsys):
    folder = source(tmp_path, regions=REGIONS, accounts="account_id,name\na1,Acme\n")
    (folder / "accounts.csv").chmod(0)
    try:
        code, _, err = validate(capsys, folder)
    finally:
        (folder / "accounts.csv").chmod(0o644)
    assert code == 1 and "accounts.csv" in err and "permission denied" in err


def test_table_path_is_folder(tmp_path, capsys):
    folder = source(tmp_path, regions=REGIONS)
    (folder / "accounts.csv").mkdir()
    code, _, err = validate(capsys, folder)
    assert code == 1
    assert "table accounts" in err and "accounts.csv is a folder, not a file" in err and "expected the file" in err


def test_source_is_file(tmp_path, capsys):
    folder = source(tmp_path, regions=REGIONS)
    code, _, err = validate(capsys, folder / "regions.csv")
    assert code == 1 and "regions.csv is a file, not a folder" in err


def test_mapping_is_folder(tmp_path, capsys):
    folder = source(tmp_path, regions=REGIONS)
    code, _, err = validate(capsys, folder, "--mapping", tmp_path)
    assert code == 1 and "--mapping" in err and "is a folder, not a mapping file" in err


def test_mixed_line_endings(tmp_path, capsys):
    folder = source(tmp_path, regions=b"region_id,name,country\r\nEast,East,CN\nWest,West,CN\r\nNorth,North,CN\n")
    code, report, _ = validate(capsys, folder)
    assert code == 0 and counts(report, "regions") == (3, 3, 0, "ok")


def test_mixed_line_endings_ragged(tmp_path, capsys):
    folder = source(tmp_path, regions=b"region_id,name,country\r\nEast,East,CN\nWest,West\r\nNorth,North,CN\n")
    code, _, err = validate(capsys, folder)
    assert code == 1 and "regions.csv line 3 has 2 fields where the header (line 1) has 3" in err


def test_empty_csv(tmp_path, capsys):
    folder = source(tmp_path, regions=REGIONS, accounts="")
    code, _, err = validate(capsys, folder)
    assert code == 1 and "accounts.csv is empty (0 bytes)" in err and "header" in err


def test_header_only_csv(tmp_path, capsys):
    folder = source(tmp_path, regions=REGIONS, accounts="account_id,name\n")
    code, report, _ = validate(capsys, folder)
    assert code == 0 and counts(report, "accounts") == (0, 0, 0, "ok") and code == 0
    note = " ".join(report["tables"]["accounts"]["notes"])
    assert "accounts.csv has no data rows" in note and "export it again" in note


def test_ragged_too_many(tmp_path, capsys):
    folder = source(tmp_path, regions="region_id,name,country\nEast,East,CN\nWest,West,CN,extra\n")
    code, _, err = validate(capsys, folder)
    assert code == 1 and "regions.csv line 3 has 4 fields where the header (line 1) has 3" in err
    assert "must be quoted" in err


def test_ragged_too_few(tmp_path, capsys):
    rows = "".join(f"R{i},R{i},CN\n" for i in range(40))
    folder = source(tmp_path, regions="region_id,name,country\n" + rows + "North,North\n")
    code, _, err = validate(capsys, folder)
    assert code == 1 and "regions.csv line 42 has 2 fields" in err


def test_bom(tmp_path, capsys):
    folder = source(tmp_path, regions=b"\xef\xbb\xbf" + REGIONS.encode())
    code, report, _ = validate(capsys, folder)
    assert code == 0 and counts(report, "regions") == (2, 2, 0, "ok")


def test_duplicate_header(tmp_path, capsys):
    folder = source(tmp_path, regions="region_id,name,name,country\nEast,E,F,CN\n")
    code, _, err = validate(capsys, folder)
    assert code == 1 and "regions.csv line 1 (the header) names column 'name' twice (fields 2 and 3)" in err


def test_semicolon_canonical(tmp_path, capsys):
    folder = source(tmp_path, regions=REGIONS.replace(",", ";"))
    code, report, _ = validate(capsys, folder)
    assert code == 0 and counts(report, "regions") == (2, 2, 0, "ok")


def test_header_whitespace(tmp_path, capsys):
    folder = source(tmp_path, payments=payments(["10", "x"]).replace(",amount", ", amount "))
    code, report, _ = validate(capsys, folder)
    assert code == 0 and counts(report, "payments") == (2, 1, 1, "warnings")
    assert "' amount ' as amount" in " ".join(report["tables"]["payments"]["notes"])
    (bad,) = problems(report, "payments", "wrong_type")
    assert bad["column"] == "amount" and bad["value"] == "x" and bad["source_row"] == 3


def test_header_case(tmp_path, capsys):
    folder = source(tmp_path, payments=payments(["10", "20"]).replace(",amount", ",Amount"))
    code, report, _ = validate(capsys, folder)
    assert code == 0 and counts(report, "payments") == (2, 2, 0, "ok")
    assert "'Amount' as amount" in " ".join(report["tables"]["payments"]["notes"])


def test_header_ambiguous(tmp_path, capsys):
    folder = source(tmp_path, payments="payment_id,contract_id,received_at,Amount,amount\np1,c1,2026-01-05,1,2\n")
    code, _, err = validate(capsys, folder)
    assert code == 1 and "payments.csv line 1 (the header): 'Amount' and 'amount' (fields 4 and 5) both stand for " \
        "column 'amount'" in err


# ------------------------------------------------------------------------------------------------ values

def test_required_column_empty(tmp_path, capsys):
    folder = source(tmp_path, payments=payments(["", "", ""]))
    code, report, _ = validate(capsys, folder)
    assert code == 1 and counts(report, "payments") == (3, 0, 3, "unusable") and report["ok"] is False
    note = " ".join(report["tables"]["payments"]["notes"])
    assert "all 3 rows were rejected" in note and "payments.amount is empty in every row" in note


def test_not_finite_amount(tmp_path, capsys):
    folder = source(tmp_path, payments=payments(["10", "inf", "-inf", "NaN", "1e999"]))
    code, report, _ = validate(capsys, folder)
    assert code == 0 and counts(report, "payments") == (5, 1, 4, "warnings")
    bad = problems(report, "payments", "wrong_type")
    assert [(p["value"], p["source_row"]) for p in bad] == [("inf", 3), ("-inf", 4), ("NaN", 5), ("1e999", 6)]
    assert all("infinite and not-a-number values are not accepted" in p["message"] for p in bad)


def test_typed_parquet_infinity(tmp_path, capsys):
    frame = pd.DataFrame({"payment_id": ["p1", "p2"], "contract_id": ["c1", "c1"],
                          "received_at": pd.to_datetime(["2026-01-05", "2026-01-06"]), "amount": [5.0, float("inf")]})
    folder = source(tmp_path)
    frame.to_parquet(folder / "payments.parquet")
    code, report, _ = validate(capsys, folder)
    assert code == 0 and counts(report, "payments") == (2, 1, 1, "warnings")
    (bad,) = problems(report, "payments", "wrong_type")
    assert bad["row_key"] == "p2" and bad["source_row"] == 2 and "infinite" in bad["message"]


def test_thousands_separators(tmp_path, capsys):
    folder = source(tmp_path, payments=payments(['"1,234.50"', "7"]))
    code, report, _ = validate(capsys, folder)
    assert code == 0 and counts(report, "payments") == (2, 1, 1, "warnings")
    (bad,) = problems(report, "payments", "wrong_type")
    assert bad["value"] == "1,234.50" and "thousands separators" in bad["message"] and "replace(" in bad["message"]


def test_negative_amount(tmp_path, capsys):
    folder = source(tmp_path, payments=payments(["-5", "7"]))
    code, report, _ = validate(capsys, folder)
    assert code == 0 and counts(report, "payments") == (2, 1, 1, "warnings")
    (bad,) = problems(report, "payments", "min")
    assert bad["row_key"] == "p1" and bad["value"] == "-5.0" and "below the minimum 0" in bad["message"]


def test_future_date(tmp_path, capsys):
    folder = source(tmp_path, payments=payments(["5", "7"], ["2026-01-05", "2027-03-01"]))
    code, report, _ = validate(capsys, folder)
    assert code == 0 and counts(report, "payments") == (2, 1, 1, "warnings")
    (bad,) = problems(report, "payments", "not_in_future")
    assert bad["row_key"] == "p2" and bad["source_row"] == 3 and "2026-10-01" in bad["message"]


def test_day_month_year_date(tmp_path, capsys):
    folder = source(tmp_path, payments=payments(["5", "7"], ["2026-01-05", "31/12/2025"]))
    code, report, _ = validate(capsys, folder)
    assert code == 0 and counts(report, "payments") == (2, 1, 1, "warnings")
    (bad,) = problems(report, "payments", "wrong_type")
    assert bad["column"] == "received_at" and bad["value"] == "31/12/2025" and bad["source_row"] == 3
    assert "strptime(<column>, '%d/%m/%Y')" in bad["message"] and "empty" not in bad["message"]


def test_impossible_date(tmp_path, capsys):
    folder = source(tmp_path, payments=payments(["5", "7"], ["2026-02-30", "2026-01-05"]))
    code, report, _ = validate(capsys, folder)
    assert code == 0 and counts(report, "payments") == (2, 1, 1, "warnings")
    (bad,) = problems(report, "payments", "wrong_type")
    assert bad["value"] == "2026-02-30" and "impossible date: 2026-02 has no day 30" in bad["message"]


def test_duplicate_key(tmp_path, capsys):
    folder = source(tmp_path, regions=REGIONS + "East,Again,CN\n")
    code, report, _ = validate(capsys, folder)
    assert code == 0 and counts(report, "regions") == (3, 2, 1, "warnings")
    (bad,) = problems(report, "regions", "duplicate_key")
    assert bad["source_row"] == 4 and "first seen at source row 2" in bad["message"]


def test_unknown_enum(tmp_path, capsys):
    text = "invoice_id,contract_id,issued_at,amount,status\ni1,c1,2026-01-05,5,paid\ni2,c1,2026-01-05,5,lost\n"
    folder = source(tmp_path, invoices=text)
    code, report, _ = validate(capsys, folder)
    assert code == 0 and counts(report, "invoices") == (2, 1, 1, "warnings")
    (bad,) = problems(report, "invoices", "allowed_values")
    assert bad["value"] == "lost" and bad["row_key"] == "i2" and "allowed: " in bad["message"]


def test_fk_missing_parent(tmp_path, capsys):
    folder = source(tmp_path, regions=REGIONS, teams="team_id,name,region_id\nt1,T1,East\nt2,T2,Mars\n")
    code, report, _ = validate(capsys, folder)
    assert code == 0 and counts(report, "teams") == (2, 1, 1, "warnings")
    (bad,) = problems(report, "teams", "foreign_key")
    assert bad["value"] == "Mars" and "no regions row has region_id equal to this value" in bad["message"]


def test_fk_rejected_parent(tmp_path, capsys):
    folder = source(tmp_path, regions=REGIONS + "North,North,\n",
                    teams="team_id,name,region_id\nt1,T1,East\nt2,T2,North\n")
    code, report, _ = validate(capsys, folder)
    assert code == 0 and counts(report, "regions") == (3, 2, 1, "warnings")
    assert counts(report, "teams") == (2, 1, 1, "warnings")
    (bad,) = problems(report, "teams", "foreign_key")
    assert bad["value"] == "North" and "its regions row (region_id equal to this value) was rejected" in bad["message"]
    assert "country: empty, but the column is required" in bad["message"]


def test_huge_value(tmp_path, capsys):
    huge = "x" * 800_000
    folder = source(tmp_path, payments=payments(["5", huge]))
    code, report, _ = validate(capsys, folder)
    assert code == 0 and counts(report, "payments") == (2, 1, 1, "warnings")
    (bad,) = problems(report, "payments", "wrong_type")
    assert "… (800,000 characters)" in bad["message"] and len(bad["message"]) < 400
    assert len(bad["value"]) < 300
    code, out, _ = run(capsys, "validate", "--source", tmp_path / "src", "--as-of", AS_OF)
    assert code == 0 and len(out) < 5000


def test_bad_boolean(tmp_path, capsys):
    folder = source(tmp_path, regions=REGIONS, reps="rep_id,name,region_id,is_active\nr1,A,East,yes\nr2,B,East,maybe\n")
    code, report, _ = validate(capsys, folder)
    assert code == 0 and counts(report, "reps") == (2, 1, 1, "warnings")
    (bad,) = problems(report, "reps", "wrong_type")
    assert bad["value"] == "maybe" and "use true/false, yes/no, t/f or 1/0" in bad["message"]


def test_fractional_integer(tmp_path, capsys):
    text = "survey_id,account_id,responded_at,csat\ns1,a1,2026-01-05,4\ns2,a1,2026-01-05,1.5\n"
    folder = source(tmp_path, surveys=text)
    code, report, _ = validate(capsys, folder)
    assert code == 0 and counts(report, "surveys") == (2, 1, 1, "warnings")
    (bad,) = problems(report, "surveys", "wrong_type")
    assert bad["value"] == "1.5" and "not a whole number" in bad["message"]


# ---------------------------------------------------------------------------------------------- mappings

MAPPING = """name: bad_inputs
files:
  deals: {path: deals.csv}
tables:
  payments:
    from: deals
    columns:
      payment_id: id
      contract_id: {value: c1}
      received_at: {value: "2026-01-05"}
      amount: amount
"""


def mapped(tmp_path: Path, capsys, mapping: str, files: dict[str, bytes | str]) -> tuple[int, dict, str]:
    folder = source(tmp_path, **files)
    path = tmp_path / "mapping.yaml"
    path.write_text(mapping, encoding="utf-8")
    return validate(capsys, folder, "--mapping", path)


def test_mapping_yaml_syntax(tmp_path, capsys):
    code, _, err = mapped(tmp_path, capsys, MAPPING.replace("  deals: {path: deals.csv}", "  deals: {path: deals.csv"),
                          {"deals.csv": "id,amount\n1,2\n"})
    assert code == 1 and "mapping.yaml is not valid YAML at line 4" in err


def test_mapping_missing_file(tmp_path, capsys):
    code, _, err = mapped(tmp_path, capsys, MAPPING, {"other.csv": "id,amount\n1,2\n"})
    assert code == 1 and "'deals.csv'" in err and "files.deals" in err and "the folder has: other.csv" in err


def test_mapping_missing_column(tmp_path, capsys):
    code, _, err = mapped(tmp_path, capsys, MAPPING, {"deals.csv": "id,value\n1,2\n"})
    assert code == 1 and "tables.payments.columns.amount: source column 'amount' not found" in err
    assert "deals: id, value" in err


def test_mapping_unknown_key(tmp_path, capsys):
    code, _, err = mapped(tmp_path, capsys, MAPPING.replace("{path: deals.csv}", "{path: deals.csv, encodng: gbk}"),
                          {"deals.csv": "id,amount\n1,2\n"})
    assert code == 1 and "files.deals.encodng: unknown key 'encodng'" in err


def test_mapping_unknown_encoding(tmp_path, capsys):
    code, _, err = mapped(tmp_path, capsys, MAPPING.replace("{path: deals.csv}", "{path: deals.csv, encoding: ebcdic}"),
                          {"deals.csv": "id,amount\n1,2\n"})
    assert code == 1 and "files.deals.encoding" in err and "'ebcdic' is not supported" in err and "gb18030" in err


def _custom_name_mapping(encoding: str) -> str:
    return (MAPPING.replace("{path: deals.csv}", f"{{path: deals.csv, encoding: {encoding}}}")
            + "    custom_fields: {who: category}\n")


@pytest.mark.parametrize(("encoding", "names"), [("latin-1", ["Café", "Müller"]), ("GB18030", ["华东", "华南"])])
def test_mapping_encoding_declared(tmp_path, capsys, encoding, names):
    text = f"id,amount,who\n1,2,{names[0]}\n2,3,{names[1]}\n"
    code, report, _ = mapped(tmp_path, capsys, _custom_name_mapping(encoding), {"deals.csv": text.encode(encoding)})
    assert code == 0 and counts(report, "payments") == (2, 2, 0, "ok")
    from crmlens import data

    con = data.connect(tmp_path / "src", tmp_path / "mapping.yaml")
    assert data.load_table(con, "payments")["who"].tolist() == names


def test_mapping_latin1_undeclared(tmp_path, capsys):
    text = "id,amount,who\n1,2,Ok\n2,3,Müller\n"
    code, _, err = mapped(tmp_path, capsys, MAPPING, {"deals.csv": text.encode("latin-1")})
    assert code == 1 and "files.deals" in err and "deals.csv is not UTF-8 text: line 3" in err
    assert "encoding: latin-1" in err


def test_mapping_semicolon_undeclared(tmp_path, capsys):
    code, _, err = mapped(tmp_path, capsys, MAPPING, {"deals.csv": "id;amount\n1;2\n"})
    assert code == 1 and "files.deals" in err and "line 1 (the header) is one field" in err
    assert "delimiter: ';'" in err


def test_mapping_header_case(tmp_path, capsys):
    code, _, err = mapped(tmp_path, capsys, MAPPING, {"deals.csv": "id,Amount\n1,2\n"})
    assert code == 1 and "source column 'amount' not found; did you mean 'Amount'" in err


def test_mapping_try_cast_losses(tmp_path, capsys):
    mapping = MAPPING + '    custom_fields:\n      fee: {sql: "TRY_CAST(fee AS DOUBLE) * 2", type: number}\n'
    files = {"deals.csv": "id,amount,fee\n1,2,1.5\n2,3,many\n3,4,\n4,5,2\n"}
    code, report, _ = mapped(tmp_path, capsys, mapping, files)
    assert code == 0 and counts(report, "payments") == (4, 4, 0, "warnings")
    (lost,) = problems(report, "payments", "unread_by_mapping")
    assert lost["value"] == "many" and lost["source_row"] == 3 and lost["row_key"] == "2"
    assert lost["column"] == "fee" and lost["severity"] == "warn"
    assert "TRY_CAST(fee AS DOUBLE) cannot read it" in lost["message"]


def test_maven_unreadable_employees(tmp_path, capsys, maven_dir):
    folder = tmp_path / "maven"
    shutil.copytree(maven_dir, folder)
    accounts = (folder / "accounts.csv").read_text(encoding="utf-8").splitlines()
    header = accounts[0].split(",")
    col = header.index("employees")
    for line_no, value in ((2, "many"), (3, "-5")):
        fields = accounts[line_no - 1].split(",")
        fields[col] = value
        accounts[line_no - 1] = ",".join(fields)
    (folder / "accounts.csv").write_text("\n".join(accounts) + "\n", encoding="utf-8")
    code, report, _ = validate(capsys, folder, "--mapping", MAVEN_MAPPING, "--tables", "accounts")
    loaded, accepted, rejected, _ = counts(report, "accounts")
    assert code == 0 and rejected == 2 and accepted == loaded - 2
    bad = problems(report, "accounts", "allowed_values")
    assert [(p["source_row"], p["value"]) for p in bad] == [(2, "employees many is not a count"),
                                                           (3, "employees -5 is not a count")]


# -------------------------------------------------------------------------------------------- parameters

def test_as_of_not_a_date(tmp_path, capsys):
    code, _, err = run(capsys, "validate", "--source", source(tmp_path, regions=REGIONS), "--as-of", "notadate")
    assert code == 2 and "--as-of: 'notadate' is not a date" in err and "2026-10-01" in err


def test_as_of_impossible(tmp_path, capsys):
    code, _, err = run(capsys, "validate", "--source", source(tmp_path, regions=REGIONS), "--as-of", "2026-02-30")
    assert code == 2 and "--as-of: '2026-02-30' is an impossible date" in err


def test_unknown_table(tmp_path, capsys):
    code, out, err = run(capsys, "validate", "--source", source(tmp_path, regions=REGIONS), "--tables", "bogus")
    assert code == 2 and "--tables: 'bogus' is not a table of the model" in err and "opportunities" in err
    assert "OK" not in out


def test_regions_empty(tmp_path, capsys):
    code, _, err = run(capsys, "run", "--regions", "", "--outputs", tmp_path)
    assert code == 2 and "--regions: '' names nothing" in err


def test_periods_bad(tmp_path, tiny_demo, capsys):
    code, _, err = run(capsys, "run", "--source", tiny_demo, "--periods", "2026-Q5", "--notebooks", "00_*",
                       "--outputs", tmp_path)
    assert code == 2 and "--periods" in err and "2026-Q5" in err


def test_params_wrong_type(tmp_path, tiny_demo, capsys):
    (tmp_path / "p.yaml").write_text("fiscal_year_start: abc\n")
    code, _, err = run(capsys, "run", "--source", tiny_demo, "--params", tmp_path / "p.yaml", "--notebooks", "00_*",
                       "--outputs", tmp_path)
    assert code == 2 and "fiscal_year_start" in err and "abc" in err


def test_params_unknown_name(tmp_path, tiny_demo, capsys):
    (tmp_path / "p.yaml").write_text("regoin: East\n")
    code, _, err = run(capsys, "run", "--source", tiny_demo, "--params", tmp_path / "p.yaml", "--notebooks", "00_*",
                       "--outputs", tmp_path)
    assert code == 2 and "regoin" in err


def test_path_options_of_the_wrong_kind(tmp_path, capsys):
    folder = source(tmp_path, regions=REGIONS)
    code, _, err = run(capsys, "run", "--params", tmp_path, "--outputs", tmp_path)
    assert code == 2 and f"--params: {tmp_path} is a folder, not a file" in err
    code, _, err = run(capsys, "run", "--outputs", folder / "regions.csv")
    assert code == 2 and "--outputs" in err and "regions.csv is a file, not a folder" in err
    code, _, err = run(capsys, "validate", "--source", folder, "--out", folder / "regions.csv")
    assert code == 2 and "--out" in err and "is a file, not a folder" in err


def test_max_problems_negative(tmp_path, capsys):
    code, _, err = run(capsys, "validate", "--source", source(tmp_path, regions=REGIONS), "--max-problems", "-1")
    assert code == 2 and "--max-problems" in err


# ------------------------------------------------------------------------------------------------- paths

def test_safe_component():
    from crmlens.paths import safe_component

    for ordinary in ("East", "APAC", "all", "2026-Q3", "2026-07-01..2026-09-30", "North America", "华东"):
        assert safe_component(ordinary) == ordinary
    odd = ["../escaped", "..", "a/b", "a\\b", ".hidden", "", "East ", "x" * 200, "a_b", "a/b/"]
    made = [safe_component(v) for v in odd]
    assert len(set(made)) == len(odd)  # distinct ids stay distinct
    for value, component in zip(odd, made, strict=True):
        assert "/" not in component and "\\" not in component and not component.startswith(".")
        assert component not in ("", ".", "..") and len(component) <= 80
        assert (Path("/runs") / component).resolve().parent == Path("/runs"), value


def test_task_paths_stay_inside(tmp_path):
    from crmlens.errors import RunError
    from crmlens.paths import ensure_inside
    from crmlens.run.execute import TaskSpec

    spec = TaskSpec(id="x", notebook="02_sales_funnel", path="nb.ipynb", region="../escaped", period="2026-Q3",
                    parameters={}, run_dir=str(tmp_path / "run"))
    assert tmp_path / "run" in spec.ipynb.resolve().parents and tmp_path / "run" in spec.html_path.resolve().parents
    plain = TaskSpec(id="x", notebook="02_sales_funnel", path="nb.ipynb", region="East", period="2026-Q3",
                     parameters={}, run_dir=str(tmp_path / "run"))
    assert plain.ipynb == tmp_path / "run" / "East" / "2026-Q3" / "02_sales_funnel.ipynb"
    with pytest.raises(RunError, match="outside the outputs folder"):
        ensure_inside(tmp_path / "run", tmp_path / "run" / ".." / "escaped")


def test_a_run_over_a_region_id_that_climbs_out_writes_only_inside(tiny_demo, tmp_path):
    """The data's region_id '../escaped' (every table that has one): `crmlens run` over every region analyses it
    like any region, in a safe folder of the run; nothing is written outside --outputs."""
    import pandas as pd

    from crmlens.run import runner
    from crmlens.run.runner import RunOptions

    source = tmp_path / "source"
    source.mkdir()
    for f in tiny_demo.glob("*.parquet"):
        frame = pd.read_parquet(f)
        if "region_id" in frame.columns:
            frame["region_id"] = frame["region_id"].replace({"East": "../escaped"})
        frame.to_parquet(source / f.name, index=False)
    outputs = tmp_path / "deep" / "outputs"
    result = runner.run(RunOptions(source=str(source), regions="../escaped", notebooks="00_*",
                                   outputs_dir=outputs, exports=(), progress=False, workers=1, run_id="t"))
    assert result.manifest["summary"]["failed"] == 0
    assert [t["region"] for t in result.manifest["tasks"]] == ["../escaped"]
    written = [p for p in tmp_path.rglob("*") if p.is_file() and not p.is_relative_to(source)]
    assert written and all(p.is_relative_to(outputs) for p in written)
    assert not (tmp_path / "deep" / "escaped").exists() and not (outputs / "escaped").exists()
    folder = next(p for p in (outputs / "t").iterdir() if p.name.startswith("escaped-"))
    assert (folder / "2026-Q3" / "00_data_quality.ipynb").is_file() and (folder / "kpis.parquet").is_file()
