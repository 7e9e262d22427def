"""中文 / English: one catalogue of every label and message a reader sees, and numbers formatted for the reader.

Everything user-visible is written in English in the code and marked: ``_("Win rate")`` translates now,
``N_("Win rate")`` only marks a string kept in a table or registry (translated where it is shown, with `_`).
Placeholders are named and filled after translation: ``_("{n} deals lost", n=12)``. The translations are
gettext catalogues (``lib/crmlens/locale/<language>/*.po``, one file per area, read with Babel), keyed by the
English text, so a changed English text is a missing translation until its catalogue entry is updated too.

The language of a kernel, a run task or a dashboard is the ``language`` parameter (`LANGUAGES`); `use` sets
it (`crmlens.notebook.open_analysis` does from the parameters). A string without a translation is shown in
English and remembered (`missing`); with ``CRMLENS_I18N_STRICT=1`` it is an error, so the notebook tests
fail on any untranslated text.

Notebook prose (markdown cells) is translated as a whole cell: the catalogue holds each cell's English text
as its msgid (`translate_notebook`; `crmlens run` and the papermill engine ``crmlens`` apply it).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from pathlib import Path
from typing import Any

#: The languages a reader can choose: English (the default, the catalogue's keys) and simplified Chinese.
LANGUAGES: tuple[str, ...] = ("en", "zh")
DEFAULT_LANGUAGE = "en"
#: Babel locale of each language (the catalogues' header; numbers are written alike in both).
LOCALES = {"en": "en_US", "zh": "zh_Hans_CN"}
LOCALE_DIR = Path(__file__).parent / "locale"
#: Set to 1 to make a missing translation an error (the test suite's notebook runs).
STRICT_ENV = "CRMLENS_I18N_STRICT"
#: When set, a path to which every missing translation is appended (one msgid per line, JSON-escaped).
MISSING_ENV = "CRMLENS_I18N_MISSING"
#: What a missing value shows in every table, tile and export.
MISSING_VALUE = "–"

_current = DEFAULT_LANGUAGE
#: The language of a `language` block, for the thread (or task) that entered it only: a dashboard kernel can
#: compute a view in the background while its page shows another language (None: the kernel's, `_current`).
_block: ContextVar[str | None] = ContextVar("crmlens_language_block", default=None)
_missing: dict[str, set[str]] = {}


class MissingTranslation(KeyError):
    """A user-visible string has no translation in the chosen language (raised only in strict mode)."""


def check_language(value: str) -> str:
    """`value` as a known language code; anything else is a ParameterError listing the accepted ones."""
    from crmlens.errors import ParameterError

    code = str(value or "").strip().lower().replace("_", "-")
    aliases = {"zh-cn": "zh", "zh-hans": "zh", "cn": "zh", "中文": "zh", "en-us": "en", "en-gb": "en",
               "english": "en", "chinese": "zh"}
    code = aliases.get(code, code)
    if code not in LANGUAGES:
        raise ParameterError(f"language: {value!r} is not a supported language; accepted: {', '.join(LANGUAGES)}")
    return code


def use(language: str | None) -> str:
    """Make `language` (None: the default) the language of everything shown from now on; returns it. Inside a
    `language` block it is the block's language until the block ends, which restores the previous one."""
    global _current
    code = check_language(language or DEFAULT_LANGUAGE)
    _current = code
    if _block.get() is not None:
        _block.set(code)
    return code


def current() -> str:
    """The language in use: in a `language` block, the block's (in the thread that entered it); else the one
    `use` set."""
    return _block.get() or _current


#: The HTML `lang` of each language: `zh-CN` makes browsers pick the Simplified Chinese glyphs of a CJK font.
HTML_LANG = {"en": "en", "zh": "zh-CN"}


def html_lang(code: str | None = None) -> str:
    """The `lang` attribute of a page in `code` (default: the language in use)."""
    return HTML_LANG[check_language(code or current())]


@contextmanager
def language(code: str | None) -> Iterator[str]:
    """Use `code` inside the block (exports of one region, a test), then the previous language again. Only the
    thread that entered the block sees it: other threads keep theirs."""
    global _current
    before = _current
    token = _block.set(check_language(code or DEFAULT_LANGUAGE))
    try:
        yield current()
    finally:
        _block.reset(token)
        _current = before  # a `use` inside the block ends with it


# ---------------------------------------------------------------------------------------------- the catalogue

@cache
def catalogue(code: str) -> dict[str, Any]:
    """msgid → translation (str, or a tuple of plural forms) for `code`, merged from its .po files."""
    if code == DEFAULT_LANGUAGE:
        return {}
    from babel.messages.pofile import read_po

    merged: dict[str, Any] = {}
    for path in sorted((LOCALE_DIR / code).glob("*.po")):
        with path.open("rb") as f:
            for message in read_po(f):
                if not message.id or message.fuzzy:
                    continue
                key = message.id[0] if isinstance(message.id, tuple) else message.id
                text = message.string
                if (isinstance(text, tuple) and any(text)) or (isinstance(text, str) and text):
                    merged[key] = text
    return merged


def _note_missing(msgid: str, code: str) -> None:
    if msgid in _missing.setdefault(code, set()):
        return
    _missing[code].add(msgid)
    path = os.environ.get(MISSING_ENV)
    if path:
        import json

        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"language": code, "msgid": msgid}, ensure_ascii=False) + "\n")
    if os.environ.get(STRICT_ENV, "").strip() in ("1", "true", "yes"):
        raise MissingTranslation(f"no {code} translation for {msgid!r} (add it to {LOCALE_DIR / code}/*.po)")


def missing(code: str | None = None) -> set[str]:
    """The msgids looked up without a translation in this process (in `code`, default the language in use)."""
    return set(_missing.get(code or current(), set()))


def lookup(msgid: str, code: str | None = None) -> str | None:
    """The translation of `msgid` in `code` (default: in use), or None when the catalogue lacks it."""
    code = code or current()
    if code == DEFAULT_LANGUAGE:
        return msgid
    found = catalogue(code).get(msgid)
    return found[0] if isinstance(found, tuple) else found


def _(msgid: str, /, **values: Any) -> str:
    """`msgid` (English) in the language in use, with its named placeholders filled from `values`."""
    text = msgid
    if (lang := current()) != DEFAULT_LANGUAGE and msgid:
        found = lookup(msgid)
        if found is None:
            _note_missing(msgid, lang)
        else:
            text = found
    return text.format(**values) if values else text


def n_(singular: str, plural: str, n: float, /, **values: Any) -> str:
    """The singular or plural form for the count `n` (``{n}`` is filled with `n` formatted)."""
    values = {"n": format_number(n, "count"), **values}
    lang = current()
    if lang == DEFAULT_LANGUAGE:
        return (singular if n == 1 else plural).format(**values)
    found = catalogue(lang).get(singular)
    if found is None:
        _note_missing(singular, lang)
        return (singular if n == 1 else plural).format(**values)
    form = found[0] if isinstance(found, tuple) else found
    return form.format(**values)


def N_(msgid: str, /) -> str:
    """Mark `msgid` for the catalogue without translating it now (labels kept in registries)."""
    return msgid


def t(text: str | None) -> str:
    """`_` for a text that may be empty or None (titles handed to a chart builder): empty stays empty."""
    return _(text) if text else ""


# ------------------------------------------------------------------------------------------------- notebooks

def _cell_key(source: str) -> str:
    return source.strip()


def translate_markdown(source: str, code: str | None = None) -> str:
    """A markdown cell's text in `code`: its catalogue entry (the whole cell, stripped, is the msgid)."""
    code = code or current()
    if code == DEFAULT_LANGUAGE or not source.strip():
        return source
    found = lookup(_cell_key(source), code)
    if found is None:
        _note_missing(_cell_key(source), code)
        return source
    return found


def translate_notebook(nb: Any, code: str | None) -> Any:
    """The notebook (nbformat node, changed in place and returned) with its markdown cells in `code`."""
    code = check_language(code or DEFAULT_LANGUAGE)
    if code == DEFAULT_LANGUAGE:
        return nb
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = translate_markdown(cell.source, code)
    nb.metadata.setdefault("crmlens", {})["language"] = code
    return nb


# --------------------------------------------------------------------------------------------------- numbers

def is_missing(value: Any) -> bool:
    """None, NaN, NaT and pandas' NA are missing values."""
    if value is None:
        return True
    try:
        import pandas as pd

        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def format_number(value: Any, unit: str = "number", currency: str | None = None, *, signed: bool = False,
                  digits: int | None = None) -> str:
    """`value` as a reader reads it, in the language in use.

    Units (`crmlens.kpis.UNITS` and a few more): ``count`` 1,234 · ``amount`` 1,234,567 USD · ``rate``/``share``
    35.2% · ``days`` 12.5 days (天) · ``ratio``/``score``/``number`` 1.23 · ``text`` as is. A missing value is
    `MISSING_VALUE`. `signed` puts + before positive numbers (changes).
    """
    if is_missing(value):
        return MISSING_VALUE
    if unit == "text" or isinstance(value, str):
        return str(value)
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isinf(number):
        return "∞" if number > 0 else "-∞"
    # en_US and zh_CN write numbers alike (1,234.5 and 35.2%): Python's formatting does it without loading
    # Babel's locale data (~0.5 s per kernel at the first call)
    sign = "+" if signed and number > 0 else ""
    if unit in ("rate", "share"):
        places = 1 if digits is None else digits
        return sign + f"{number * 100:,.{places}f}%"
    if unit == "count":
        return sign + f"{round(number):,d}"
    if unit == "amount":
        text = f"{round(number):,d}"
        return sign + (f"{text} {currency}" if currency else text)
    if unit == "days":
        places = 1 if digits is None else digits
        return sign + _("{value} days", value=f"{number:,.{places}f}")
    places = 2 if digits is None else digits
    return sign + f"{number:,.{places}f}"


def format_date(value: Any) -> str:
    """A date as 2026-09-30 (both languages: ISO dates read the same in Chinese reports); missing is –."""
    if is_missing(value):
        return MISSING_VALUE
    import pandas as pd

    stamp = pd.Timestamp(value)
    return f"{stamp:%Y-%m-%d %H:%M}" if (stamp.hour or stamp.minute) else f"{stamp:%Y-%m-%d}"


_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def sentences(*parts: str) -> str:
    """Sentences as one text: a space after an English sentence, none after a Chinese one (ends with "。");
    empty parts are left out."""
    text = ""
    for part in (p for p in parts if p):
        text += part if not text or text.endswith(("。", "！", "？", "）")) else " " + part
    return text


def has_cjk(text: str) -> bool:
    """True when `text` holds Chinese characters."""
    return bool(_CJK.search(text))


def humanise(name: str) -> str:
    """A snake_case name as words ("sql_to_opportunity_rate" → "Sql to opportunity rate"): the last resort
    for a column with no label, which also notes it as a missing label."""
    words = name.replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def labels(mapping: Mapping[str, str]) -> dict[str, str]:
    """Every value of `mapping` translated (column → label maps)."""
    return {key: _(value) for key, value in mapping.items()}


# ------------------------------------------------------------------------------------------ the catalogue check

#: The marking functions Babel extracts (`_("...")`, `N_("...")`, `n_("one", "many", n)`).
KEYWORDS = {"_": None, "N_": None, "n_": (1, 2), "t": None}


_TITLE_ARG = re.compile(r"""\btitle=(["'])((?:(?!\1).)+)\1""")
_INLINE_CALL = re.compile(r"""(?<![\w.])_\((["'])((?:(?!\1).)+)\1\s*[,)]""")


def extract_messages(root: Path | None = None) -> dict[str, str]:
    """Every user-visible msgid of the code and notebooks → where it is (``file:line``): strings marked in
    ``lib/crmlens`` (Babel's Python extractor), notebook markdown cells, and the registries' labels (KPIs,
    table columns)."""
    from babel.messages.extract import extract_from_file

    from crmlens import paths

    root = root or Path(__file__).parent
    found: dict[str, str] = {}
    for path in sorted(root.rglob("*.py")):
        where = path.relative_to(root.parent)
        for lineno, message, _comments, _context in extract_from_file("python", str(path), keywords=KEYWORDS):
            msgid = message[0] if isinstance(message, tuple) else message
            if msgid:
                found.setdefault(msgid, f"{where}:{lineno}")
        # calls inside f-string expressions, which Babel's tokenizer does not see
        if path.name == "i18n.py":  # its docstrings' examples
            continue
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for match in _INLINE_CALL.finditer(line):
                found.setdefault(match.group(2), f"{where}:{lineno}")
    import nbformat

    for nb_path in sorted(paths.NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(nb_path, as_version=4)
        for index, cell in enumerate(nb.cells):
            if cell.cell_type == "markdown" and cell.source.strip():
                found.setdefault(_cell_key(cell.source), f"{nb_path.name}:cell {index}")
            elif cell.cell_type == "code":  # chart and table titles written in the cells: title="..."
                for match in _TITLE_ARG.finditer(cell.source):
                    found.setdefault(match.group(2), f"{nb_path.name}:cell {index}")
    from crmlens import kpis, present

    for kpi in kpis.load_all().values():
        found.setdefault(kpi.label, f"KPI {kpi.name}")
        found.setdefault(kpi.description, f"KPI {kpi.name} (description)")
    for name, column in present.COLUMNS.items():
        found.setdefault(column.label, f"column {name}")
    return found


def untranslated(code: str = "zh", root: Path | None = None) -> dict[str, str]:
    """The msgids of `extract_messages` with no translation in `code` → where they are."""
    known = catalogue(code)
    return {msgid: where for msgid, where in extract_messages(root).items() if msgid not in known}


def po_entries(messages: Mapping[str, str]) -> str:
    """`messages` (msgid → where) as .po entries with empty translations, for a translator to fill in."""
    import io

    from babel.messages.catalog import Catalog
    from babel.messages.pofile import write_po

    cat = Catalog(locale="zh_Hans_CN")
    for msgid, where in messages.items():
        file, _sep, line = where.rpartition(":")
        cat.add(msgid, "", locations=[(file or where, int(line) if line.isdigit() else 0)])
    out = io.BytesIO()
    write_po(out, cat, omit_header=True, width=120)
    return out.getvalue().decode("utf-8")
