"""Generated docs must match the code they are generated from."""

from __future__ import annotations

from crmlens import docs
from crmlens.schema import TABLES


def test_generated_docs_are_up_to_date():
    stale = docs.write_docs(check=True)
    assert not stale, f"run `crmlens docs` (or make docs): out of date: {stale}"


def test_data_model_doc_documents_every_table_and_column():
    text = docs.data_model_markdown()
    for table in TABLES:
        assert f"## `{table.name}`" in text
        assert table.grain in text
        for col in table.columns:
            assert col.description, f"{table.name}.{col.name} has no description"
            assert f"| `{col.name}` |" in text
