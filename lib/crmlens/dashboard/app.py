"""What a dashboard notebook calls — three lines, so the notebooks hold no logic:

    board_data = app.load("overview")   # before wait_for_request: imports, data, caches (preheated kernels)
    wait_for_request()                   # Voila: the viewer's request (and its query string) arrives
    board = app.show("overview", board_data)

`load` opens the source Voila was started for (`crmlens.dashboard.serve.source_from_env`; the demo by
default), validates its tables once and computes the default view of every region so that the first page
and the first region changes are quick. `show` displays the dashboard of the page's deep link
(``QUERY_STRING``; a bad link opens the default view with a message naming the bad parameter).
"""

from __future__ import annotations

import dataclasses
import os

from crmlens import kpis
from crmlens.dashboard import serve
from crmlens.dashboard import state as st
from crmlens.dashboard.model import DEFAULT_FACT_TABLES, DashboardData
from crmlens.dashboard.widgets import VIEWS, Dashboard, open_dashboard, warm

#: Set to "0" to skip computing every region's default view while a kernel preheats.
WARM_ENV = "CRMLENS_DASHBOARD_WARM"


def load(view: str = "overview", source: str | None = None, mapping: str | None = None) -> DashboardData:
    """The dashboard data of the served source (or `source` / `mapping`): the tables view `view` needs (its
    tiles' KPIs' tables and `DEFAULT_FACT_TABLES`), with the view's default state computed for every region."""
    env_source, env_mapping = serve.source_from_env()
    spec = VIEWS[view]
    tables = {*DEFAULT_FACT_TABLES, *(t for name in spec.tiles for t in kpis.get_kpi(name).tables)}
    board_data = DashboardData.load(source or env_source, mapping if source else (mapping or env_mapping),
                                    tables=sorted(tables))
    if os.environ.get(WARM_ENV, "1") != "0":
        default = st.FilterState()
        regions = ["all", *board_data.options["regions"]]
        warm(board_data, spec, [dataclasses.replace(default, region=r) for r in regions])
    return board_data


def show(view: str, board_data: DashboardData, query: str | None = None) -> Dashboard:
    """Display view `view` for the page's deep link (`query`, default ``$QUERY_STRING``) and return it."""
    from IPython.display import display

    board = open_dashboard(view, board_data, os.environ.get("QUERY_STRING", "") if query is None else query)
    display(board.app)
    return board
