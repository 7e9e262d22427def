"""The papermill engine ``crmlens``: papermill's own (nbclient) engine, which first puts the notebook's prose in
the language of its `language` parameter, as `crmlens run` does::

    papermill --engine crmlens notebooks/02_sales_funnel.ipynb out.ipynb -p language zh -p region East

(Without ``--engine crmlens`` everything the code writes — findings, tables, charts, headings — follows
`language` too; only the markdown cells stay as written.)
"""

from __future__ import annotations

from typing import Any

from papermill.engines import NBClientEngine


class TranslatingEngine(NBClientEngine):
    """nbclient execution after translating the markdown cells (`crmlens.i18n.translate_notebook`)."""

    @classmethod
    def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, **kwargs: Any) -> Any:
        from crmlens import i18n

        parameters = (nb_man.nb.metadata.get("papermill") or {}).get("parameters") or {}
        language = parameters.get("language")
        if language and language != i18n.DEFAULT_LANGUAGE:
            i18n.translate_notebook(nb_man.nb, language)
        return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)
