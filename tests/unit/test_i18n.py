"""中文 / English: the language parameter, the catalogue, reader number formats, and the check that every
user-visible string has its translation."""

from __future__ import annotations

import nbformat
import pytest

from crmlens import i18n, params
from crmlens.errors import ParameterError


@pytest.fixture(autouse=True)
def _english_after():
    yield
    i18n.use("en")


@pytest.mark.parametrize(("given", "code"), [("en", "en"), ("zh", "zh"), ("zh-CN", "zh"), ("zh_Hans", "zh"),
                                             ("中文", "zh"), ("EN-us", "en"), ("cn", "zh")])
def test_language_codes_and_aliases(given, code):
    assert i18n.check_language(given) == code


def test_a_bad_language_names_the_parameter_and_what_is_accepted():
    with pytest.raises(ParameterError, match=r"language: 'fr'.*accepted: en, zh"):
        i18n.check_language("fr")
    with pytest.raises(ParameterError, match="language"):
        params.load_params({"language": "klingon"})


def test_language_is_a_parameter_with_default_en():
    assert params.load_params().language == "en"
    assert params.load_params({"language": "zh-CN"}).language == "zh"


def test_translation_placeholders_and_plurals():
    assert i18n._("Region {region}", region="East") == "Region East"
    with i18n.language("zh"):
        assert i18n._("Region {region}", region="East") == "区域 East"
        assert i18n._("Executive summary") == "管理层摘要"
        assert i18n.n_("{n} analysis", "{n} analyses", 3) == "3 项分析"
    assert i18n.n_("{n} analysis", "{n} analyses", 1) == "1 analysis"
    assert i18n.n_("{n} analysis", "{n} analyses", 2) == "2 analyses"
    assert i18n.current() == "en", "the block restores the language"


def test_a_missing_translation_falls_back_to_english_is_remembered_and_fails_in_strict_mode(monkeypatch, tmp_path):
    log = tmp_path / "missing.jsonl"
    monkeypatch.setenv(i18n.MISSING_ENV, str(log))
    with i18n.language("zh"):
        assert i18n._("A sentence nobody translated") == "A sentence nobody translated"
        assert "A sentence nobody translated" in i18n.missing()
        assert "A sentence nobody translated" in log.read_text(encoding="utf-8")
        monkeypatch.setenv(i18n.STRICT_ENV, "1")
        with pytest.raises(i18n.MissingTranslation, match="Another one"):
            i18n._("Another one")


@pytest.mark.parametrize(("value", "unit", "en", "zh"), [
    (0.4044, "rate", "40.4%", "40.4%"),
    (1234567.4, "amount", "1,234,567 USD", "1,234,567 USD"),
    (12.345, "days", "12.3 days", "12.3 天"),
    (1234, "count", "1,234", "1,234"),
    (1.234, "ratio", "1.23", "1.23"),
    (None, "rate", "–", "–"),
    (float("nan"), "amount", "–", "–"),
])
def test_numbers_for_readers(value, unit, en, zh):
    assert i18n.format_number(value, unit, "USD") == en
    with i18n.language("zh"):
        assert i18n.format_number(value, unit, "USD") == zh


def test_signed_changes():
    assert i18n.format_number(0.123, "rate", signed=True) == "+12.3%"
    assert i18n.format_number(-0.05, "rate", signed=True) == "-5.0%"


def test_notebook_prose_is_translated_cell_by_cell():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("Executive summary\n"), nbformat.v4.new_code_cell("x = 1")]
    i18n.translate_notebook(nb, "zh")
    assert nb.cells[0].source == "管理层摘要" and nb.cells[1].source == "x = 1"
    assert nb.metadata["crmlens"]["language"] == "zh"


def test_the_extractor_finds_marked_strings_notebook_prose_and_registry_labels():
    found = i18n.extract_messages()
    assert "Executive summary" in found                    # _() in the code
    assert "Win rate" in found                             # a KPI label of the registry
    assert any(k.startswith("# Sales funnel") for k in found), "notebook markdown cells"
    assert "Conclusions and recommendations" in found      # _() inside an f-string


def test_every_user_visible_string_has_its_chinese_translation():
    missing = i18n.untranslated("zh")
    assert not missing, (f"{len(missing)} strings lack a zh translation (`crmlens i18n --po` lists them as .po "
                         f"entries): " + "; ".join(f"{w}: {m[:60]!r}" for m, w in list(missing.items())[:15]))


def test_catalogue_placeholders_match_the_english():
    import re

    field = re.compile(r"\{(\w*)[^{}]*\}")
    for msgid, text in i18n.catalogue("zh").items():
        forms = text if isinstance(text, tuple) else (text,)
        for form in forms:
            allowed = set(field.findall(msgid)) | ({"n"} if isinstance(text, tuple) else set())  # n_() fills {n}
            assert set(field.findall(form)) <= allowed, (msgid, form)


def test_a_msgid_in_two_catalogue_files_means_the_same():
    """The catalogue is keyed by the English text: "Lost" (a lost deal, 丢单) in one area's file and "Lost" (a
    lost customer, 流失客户) in another's would silently take the last file's translation everywhere."""
    from babel.messages.pofile import read_po

    seen: dict[str, tuple[str, object]] = {}
    clashes = []
    for path in sorted((i18n.LOCALE_DIR / "zh").glob("*.po")):
        with path.open("rb") as f:
            for message in read_po(f):
                if not message.id:
                    continue
                key = message.id[0] if isinstance(message.id, tuple) else message.id
                text = tuple(message.string) if isinstance(message.string, tuple | list) else message.string
                if key in seen and seen[key][1] != text:
                    clashes.append(f"{key!r}: {seen[key][0]} {seen[key][1]!r} vs {path.name} {text!r}")
                seen.setdefault(key, (path.name, text))
    assert not clashes, "; ".join(clashes[:10])


def test_notebook_prose_translations_keep_headings_and_code():
    """A translated markdown cell (or chart/table title of a cell) keeps its structure: paragraphs or none, the
    same headings (level by level) and the same `code` spans (table and column names are not translated) — a
    translation filed under another cell's msgid shows up here."""
    import re

    heading = re.compile(r"^(#+)\s", re.M)
    code = re.compile(r"`[^`]+`")
    catalogue = i18n.catalogue("zh")
    checked = 0
    for msgid, where in i18n.extract_messages().items():
        if ".ipynb:cell" not in where or msgid not in catalogue:
            continue
        text = catalogue[msgid]
        assert ("\n\n" in text) == ("\n\n" in msgid), (where, "paragraphs", msgid[:60])
        assert heading.findall(text) == heading.findall(msgid), (where, msgid[:60])
        assert sorted(code.findall(text)) == sorted(code.findall(msgid)), (where, msgid[:60])
        checked += 1
    assert checked > 20
