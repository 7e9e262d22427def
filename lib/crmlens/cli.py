"""The `crmlens` command. Every sub-command has `--help`.

    crmlens demo      generate the deterministic demo dataset (Parquet, one file per table)
    crmlens validate  validate a source against the canonical model and report every problem
    crmlens summary   print a short summary of a source's data (rows, date ranges, regions)
    crmlens docs      regenerate docs/data_model.md from the model in code
    crmlens params    describe every parameter (name, type, default, allowed values)
    crmlens i18n      list the user-visible strings that lack a translation (中文 catalogue)
    crmlens run       run every analysis notebook for every region × period: reports, exports, manifest
    crmlens diff      compare two runs: which KPIs moved, and which inputs changed
    crmlens dashboard serve the Voila dashboards (127.0.0.1 by default; a token when shared)
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from crmlens.errors import CrmLensError

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2


def _add_source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", default="demo",
                   help="'demo' (data/demo, the default), a folder of exports, or a database URL "
                        "such as postgresql://user@127.0.0.1:5432/crm")
    p.add_argument("--mapping", default=None,
                   help="mapping file for a folder of another CRM's exports, e.g. params/sources/maven_crm.yaml")


def _cmd_demo(args: argparse.Namespace) -> int:
    from crmlens import demo, paths

    out = Path(args.out) if args.out else paths.DEMO_DIR
    counts = demo.generate(scale=args.scale, seed=args.seed, out=out, progress=not args.quiet)
    total = sum(counts.values())
    print(f"Wrote {len(counts)} tables, {total:,} rows (scale {args.scale}, seed {args.seed}) "
          f"to {paths.display_path(out)}")
    return EXIT_OK


def _as_of_option(text: str | None) -> object:
    """``--as-of`` as a timestamp (None when not given); a ParameterError naming the option and the formats."""
    import re

    import pandas as pd

    from crmlens.errors import ParameterError

    if text is None:
        return None
    value = text.strip()
    formats = "an ISO date or time such as 2026-10-01 or 2026-10-01T12:00"
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?", value):
        raise ParameterError(f"--as-of: {text!r} is not a date; use {formats}")
    try:
        stamp = pd.Timestamp(value)
        return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo is not None else stamp
    except ValueError:
        raise ParameterError(f"--as-of: {text!r} is an impossible date (no such day); use {formats}") from None


def _tables_option(names: list[str] | None) -> list[str] | None:
    """``--tables`` checked against the canonical tables (a ParameterError naming the unknown ones)."""
    from crmlens.errors import ParameterError
    from crmlens.schema import TABLE_NAMES

    if names is None:
        return None
    given = [n.strip() for item in names for n in item.split(",") if n.strip()]
    unknown = [n for n in given if n not in TABLE_NAMES]
    if unknown or not given:
        shown = ", ".join(repr(n) for n in unknown) or "nothing"
        raise ParameterError(f"--tables: {shown} {'is' if len(unknown) == 1 else 'are'} not a table of the model; "
                             f"use one or more of: {', '.join(TABLE_NAMES)}")
    return given


def _cmd_validate(args: argparse.Namespace) -> int:
    import time

    from crmlens import data
    from crmlens.reporting import write_validation_outputs

    as_of = _as_of_option(args.as_of)
    tables = _tables_option(args.tables)
    _check_path_option("--out", args.out, folder=True)
    if args.max_problems < 0:
        from crmlens.errors import ParameterError

        raise ParameterError(f"--max-problems: {args.max_problems} is negative; use 0 (all) or a positive number")
    con = data.connect(args.source, args.mapping)
    started = time.perf_counter()

    def progress(name: str, rep) -> None:
        print(f"  validated {name:<26} {rep.loaded:>11,} rows  {time.perf_counter() - started:6.1f} s",
              file=sys.stderr, flush=True)

    results, report = data.validate_source(con, as_of=as_of, tables=tables, progress=progress)
    store = data.source_info(con).store
    if store is not None and store.version is not None:
        print(f"Validated store: {store.folder} (version {store.version}, validated in "
              f"{store.meta['seconds']:.1f} s)", file=sys.stderr)
    if args.out:
        where = write_validation_outputs(Path(args.out), results, report)
        print(f"Report and rejected rows written to {where}", file=sys.stderr)
    if args.json:
        limit = None if args.max_problems == 0 else args.max_problems
        print(json.dumps(report.to_dict(max_problems=limit), indent=2, default=str))
    else:
        print(report.to_text(max_problems=args.max_problems or 10**9))
    return EXIT_OK if report.ok else EXIT_PROBLEM


def _cmd_summary(args: argparse.Namespace) -> int:
    from crmlens import data

    con = data.connect(args.source, args.mapping)
    print(data.summary_text(con))
    return EXIT_OK


def _cmd_docs(args: argparse.Namespace) -> int:
    from crmlens import docs

    written = docs.write_docs(check=args.check)
    if args.check:
        if written:
            print("Out of date (run `crmlens docs`): " + ", ".join(str(p) for p in written))
            return EXIT_PROBLEM
        print("Generated docs are up to date.")
        return EXIT_OK
    print("Wrote " + ", ".join(str(p) for p in written) if written else "Generated docs were already up to date.")
    return EXIT_OK


def _cmd_params(args: argparse.Namespace) -> int:
    from crmlens import params

    print(params.describe_params())
    return EXIT_OK


def _check_path_option(option: str, value: str | None, *, folder: bool) -> None:
    """A path option that names a file where a folder is expected (or the reverse) is a ParameterError saying so."""
    from crmlens.errors import ParameterError

    if value is None:
        return
    path = Path(value)
    if folder and path.is_file():
        raise ParameterError(f"{option}: {value} is a file, not a folder; give the folder to write to (it is made "
                             f"if it does not exist)")
    if not folder and path.is_dir():
        raise ParameterError(f"{option}: {value} is a folder, not a file; give the YAML file itself")


def _check_list_option(option: str, value: str, example: str) -> None:
    """A comma-list option given but naming nothing (``--regions ''``, ``--periods ,``) is a ParameterError."""
    from crmlens.errors import ParameterError

    if not [part for part in value.split(",") if part.strip()]:
        raise ParameterError(f"{option}: {value!r} names nothing; give a comma list such as {example}, or leave "
                             f"the option out for its default")


def _cmd_run(args: argparse.Namespace) -> int:
    from crmlens.run import plan, runner

    _check_path_option("--params", args.params, folder=False)
    _check_path_option("--notify", args.notify, folder=False)
    _check_path_option("--outputs", args.outputs, folder=True)
    _check_list_option("--regions", args.regions, "East,West (or all)")
    _check_list_option("--periods", args.periods, "2026-Q3 or 2025-Q1..2026-Q2 (or latest)")
    _check_list_option("--exports", args.exports, "html,xlsx (or none)")
    if args.notebooks is not None:
        _check_list_option("--notebooks", args.notebooks, "'02_*,03_*'")

    overrides = plan.parse_overrides_file(args.params) if args.params else {}
    if args.language:
        overrides["language"] = args.language
    exports = [] if args.exports.strip().lower() == "none" else plan.split_list(args.exports)
    options = runner.RunOptions(
        regions=args.regions, periods=args.periods, notebooks=args.notebooks, source=args.source,
        mapping=args.mapping, overrides=overrides, workers=args.workers, cluster=args.cluster, run_id=args.run_id,
        resume=args.resume, timeout=args.timeout or None, retries=args.retries, exports=exports,
        outputs_dir=Path(args.outputs) if args.outputs else None,
        notebooks_dir=Path(args.notebooks_dir) if args.notebooks_dir else None,
        progress=False if args.no_progress else None, command=["crmlens", *sys.argv[1:]], notify=args.notify)
    result = runner.run(options)
    print(runner.summary_text(result))
    return result.exit_code


def _cmd_i18n(args: argparse.Namespace) -> int:
    from crmlens import i18n

    language = i18n.check_language(args.language)
    missing = i18n.untranslated(language)
    if args.po:
        print(i18n.po_entries(missing), end="")
        return EXIT_OK
    for msgid, where in missing.items():
        print(f"{where}: {msgid[:100]!r}")
    print(f"{len(missing)} user-visible string(s) without a {language} translation "
          f"(catalogues: {i18n.LOCALE_DIR / language}/*.po)", file=sys.stderr)
    return 1 if missing and args.check else EXIT_OK


def _cmd_diff(args: argparse.Namespace) -> int:
    from crmlens.run import diff

    result = diff.diff_runs(diff.resolve_run(args.run_a), diff.resolve_run(args.run_b))
    print(json.dumps(result.to_dict(), indent=2, default=str) if args.json else result.to_text())
    return EXIT_OK


def _cmd_notify(args: argparse.Namespace) -> int:
    from crmlens import notify
    from crmlens.run import diff

    run_dir = diff.resolve_run(args.run)
    records = notify.send_run_notifications(run_dir, Path(args.config),
                                            previous_run=diff.resolve_run(args.previous) if args.previous else None)
    for r in records:
        print(f"{r.get('channel')} ({r.get('kind')}): {r.get('status')}" + (f" — {r['reason']}" if r.get("reason")
                                                                            else ""))
    return EXIT_OK if all(r.get("status") != "failed" for r in records) else 1


def _cmd_dashboard(args: argparse.Namespace) -> int:
    import os

    from crmlens.dashboard import serve

    target = serve.DASHBOARDS_DIR if args.notebook == "all" else serve.DASHBOARDS_DIR / f"{args.notebook}.ipynb"
    token = args.token
    if token == "auto" or (token is None and not serve.is_loopback(args.host)):
        token = serve.new_token()
    argv = serve.voila_command(target, host=args.host, port=args.port, token=token, pool_size=args.pool_size,
                               cull_idle_timeout=args.cull_idle_timeout)
    refresh = serve.check_refresh(args.refresh, "--refresh") if args.refresh is not None else None
    if refresh is None:
        serve.refresh_interval()  # a bad inherited $CRMLENS_DASHBOARD_REFRESH_S: said now, not on every page
    env = serve.voila_env(args.source, args.mapping, refresh_s=refresh)
    if args.print_command:
        print(" ".join(argv))
        return EXIT_OK
    # one notebook: Voila serves it at the root (its /voila/render/ pages exist only when serving the folder)
    # serving the folder: the landing page (every view, with a thumbnail and a line each)
    where = serve.url_for(args.host, args.port, token, serve.LANDING if args.notebook == "all" else None)
    what = "the dashboards" if args.notebook == "all" else f"the {args.notebook} dashboard"
    print(f"Serving {what} of {args.source} at {where}")
    if not serve.is_loopback(args.host):
        print("Reachable from other machines: share the address with its token; anyone with it can open the "
              "dashboards.")
    every = serve.refresh_interval(env)
    print(f"Kernels: {args.pool_size} preheated per dashboard; idle kernels stop after {args.cull_idle_timeout} s. "
          + (f"Open pages check for new data every {every:g} s. " if every else
             "Open pages check for new data on request only (Refresh data). ")
          + "Stop with Ctrl+C.", flush=True)
    # Ctrl+C, SIGTERM or SIGHUP stop Voila and its kernels with this process (exit status 0)
    return serve.run_voila(argv, env=env, cwd=os.getcwd())


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `crmlens` command (also used to document it)."""
    parser = argparse.ArgumentParser(
        prog="crmlens",
        description="CRM Lens: a reproducible analysis workbook for CRM market analytics.",
        epilog="Run `crmlens COMMAND --help` for a command's options. Docs: README.md and docs/.",
    )
    from crmlens import __version__

    parser.add_argument("--version", action="version", version=f"crmlens {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("demo", help="generate the deterministic demo dataset",
                       description="Generate a seeded, internally consistent demo company with planted truths: "
                                   "one Parquet file per canonical table. Same scale and seed give "
                                   "byte-identical files.")
    p.add_argument("--scale", default="default", help="tiny | small | default | large (default: default)")
    p.add_argument("--seed", type=int, default=7, help="random seed (default: 7)")
    p.add_argument("--out", default=None, help="output folder (default: data/demo)")
    p.add_argument("--quiet", action="store_true", help="no per-table progress lines")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("validate", help="validate a source and report every problem",
                       description="Validate every table of a source against the canonical model. Prints per "
                                   "table loaded/accepted/rejected counts and every problem (table, column, row "
                                   "key, value, rule). Exit status 1 when a file cannot be read or a table "
                                   "cannot be used, 2 for a bad option. A source is "
                                   "validated once per version (its files, the mapping, the validation code) into "
                                   "the validated store (outputs/.cache/store, or $CRMLENS_STORE_DIR) that every "
                                   "analysis, run and dashboard reads; later calls read the stored result.")
    _add_source_args(p)
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("--tables", nargs="+", default=None, metavar="TABLE",
                   help="report only these tables (the whole source is validated once per version)")
    p.add_argument("--as-of", default=None,
                   help="the 'now' for not-in-the-future checks, e.g. 2026-10-01 (default: the current time)")
    p.add_argument("--max-problems", type=int, default=50,
                   help="problem rows to list (default 50; 0 = all). Counts per rule are always complete.")
    p.add_argument("--out", default=None,
                   help="also write report.json and rejected/<table>.parquet (each rejected row with its "
                        "reasons) to this folder")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("summary", help="print a short summary of a source's data",
                       description="Rows per table, the time span each covers, and bookings per region.")
    _add_source_args(p)
    p.set_defaults(func=_cmd_summary)

    p = sub.add_parser("docs", help="regenerate the generated docs (data model, parameters)",
                       description="Write docs/data_model.md and docs/parameters.md from the code.")
    p.add_argument("--check", action="store_true", help="only check they are up to date (exit 1 if not)")
    p.set_defaults(func=_cmd_docs)

    p = sub.add_parser("i18n", help="list the user-visible strings that lack a translation",
                       description="Extract every user-visible string (marked with _()/N_()/n_() in lib/crmlens, "
                                   "notebook markdown cells, KPI and column labels) and list those without a "
                                   "translation in the catalogue lib/crmlens/locale/<language>/*.po.")
    p.add_argument("--language", default="zh", help="language to check (default zh)")
    p.add_argument("--check", action="store_true", help="exit 1 when a string lacks its translation")
    p.add_argument("--po", action="store_true", help="print the missing strings as .po entries to fill in")
    p.set_defaults(func=_cmd_i18n)

    p = sub.add_parser("params", help="describe every parameter",
                       description="Name, type, default, allowed values and help of every parameter "
                                   "(params/defaults.yaml, CLI options, notebook parameters).")
    p.set_defaults(func=_cmd_params)

    p = sub.add_parser(
        "run", help="run every analysis notebook for every region × period (reports, exports, manifest)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Execute the analysis notebooks (notebooks/NN_*.ipynb) with papermill for every region × "
                    "period, in parallel, and write outputs/<run_id>/: executed notebooks, HTML reports, "
                    "<region>/kpis.parquet, report.xlsx, deck.pptx, report.pdf, index.html and manifest.json "
                    "(parameters, data fingerprint, code and package versions, per-task status). All parameters "
                    "are checked before any notebook starts. Layout: docs/run.md.",
        epilog="examples:\n"
               "  crmlens run                                    every region, latest complete quarter\n"
               "  crmlens run --regions East,West --periods 2025-Q1..2026-Q2\n"
               "  crmlens run --notebooks '02_*' --params my.yaml --run-id q3-final\n"
               "  crmlens run --run-id q3-final --resume         complete an interrupted run\n"
               "  crmlens run --cluster tcp://127.0.0.1:8786     on a Dask distributed cluster\n"
               "exit status: 0 all ok, 1 a task or export failed, 2 bad parameters, 130 interrupted")
    p.add_argument("--regions", default="all",
                   help="comma list of region ids, or all (the company as a whole plus every region; default), or "
                        "company (the company as a whole only; also allowed in a list: company,East)")
    p.add_argument("--periods", default="latest",
                   help="comma list of periods and ranges such as 2025-Q1..2026-Q2; latest (default) = the latest "
                        "complete quarter of the data")
    p.add_argument("--notebooks", default=None,
                   help="glob(s) on notebook names, comma-separated, e.g. '02_*,03_*' (default: every "
                        "notebooks/NN_*.ipynb)")
    p.add_argument("--notebooks-dir", default=None, metavar="DIR",
                   help="folder of the analysis notebooks (default: the project's notebooks/)")
    p.add_argument("--source", default=None, help="data source (default: params/defaults.yaml, i.e. demo)")
    p.add_argument("--mapping", default=None, help="mapping file for a folder of another CRM's exports")
    p.add_argument("--params", default=None, metavar="FILE",
                   help="YAML file of parameter overrides for every task (e.g. comparison: last_year)")
    p.add_argument("--language", default=None, choices=["en", "zh"],
                   help="language of the reports, findings, tables and charts: en or zh (简体中文) "
                        "(default: params/defaults.yaml, en)")
    p.add_argument("--workers", type=int, default=2, help="notebooks run at the same time (default 2)")
    p.add_argument("--cluster", default=None, metavar="tcp://HOST:PORT",
                   help="submit the tasks to this Dask distributed scheduler instead of local workers")
    p.add_argument("--run-id", default=None, help="name of the run folder (default: the start time)")
    p.add_argument("--resume", action="store_true",
                   help="reuse tasks whose notebook, parameters, data and code are unchanged; run the rest "
                        "(with no --run-id: the latest run)")
    p.add_argument("--timeout", type=float, default=600, help="seconds a notebook may run (default 600; 0 = none)")
    p.add_argument("--retries", type=int, default=2,
                   help="retries of a notebook whose kernel died (default 2; errors in cells are not retried)")
    p.add_argument("--exports", default="html,xlsx,pptx,pdf",
                   help="per-region exports: comma list of html, xlsx, pptx, pdf, or none (default: all four)")
    p.add_argument("--outputs", default=None, help="folder runs are written to (default: outputs/)")
    p.add_argument("--no-progress", action="store_true", help="plain log lines instead of a progress bar")
    p.add_argument("--notify", default=None, metavar="FILE",
                   help="after the run, send its digest and alerts by e-mail/webhook as this file says "
                        "(e.g. params/notify.yaml; see docs/notifications.md); a failing channel never fails the run")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("diff", help="compare two runs: KPIs that changed and the inputs behind the change",
                       description="List every KPI that changed between two runs (by region, period, notebook: "
                                   "old, new, delta) and what changed in their inputs: parameters, data fingerprint "
                                   "per table, code version, packages; and how each pipeline forecast moved, deal "
                                   "by deal (won, lost, pushed, added, amount changed).")
    p.add_argument("run_a", help="the earlier run: a run id under outputs/ or a run folder")
    p.add_argument("run_b", help="the later run")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.set_defaults(func=_cmd_diff)

    p = sub.add_parser("notify", help="send a finished run's digest and alerts by e-mail/webhook (again)",
                       description="Send the digest of a run (summary, key changes vs the previous run, alerts, "
                                   "links and attachments) to the channels of a notifications file — as "
                                   "`crmlens run --notify FILE` does after a run. Secrets come from the environment "
                                   "variables the file names. Exit 1 when a channel failed.")
    p.add_argument("run", help="a run id under outputs/ (or latest) or a run folder")
    p.add_argument("--config", required=True, metavar="FILE", help="notifications file (docs/notifications.md)")
    p.add_argument("--previous", default=None, metavar="RUN",
                   help="the run to compare with for key changes (default: the run written before it)")
    p.set_defaults(func=_cmd_notify)

    p = sub.add_parser(
        "dashboard", help="serve the Voila dashboards (executive overview, sales manager)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Serve notebooks/dashboards/ with Voila: stakeholders open a URL and get the KPI tiles, "
                    "charts, drill-down and exports, never code. Kernels are preheated (the data loaded and the "
                    "default view computed before anyone opens a page) and idle kernels are culled. Listens on "
                    "127.0.0.1 unless --host says otherwise; off loopback a token is always required. The "
                    "address bar is a deep link: ?region=East&period=2026-Q3 opens that view.",
        epilog="examples:\n"
               "  crmlens dashboard                                  http://127.0.0.1:8866/ (this machine only)\n"
               "  crmlens dashboard --notebook overview --port 9000\n"
               "  crmlens dashboard --host 0.0.0.0                   shared, with a random token (printed)\n"
               "  crmlens dashboard --source data/maven --mapping params/sources/maven_crm.yaml\n"
               "Guide: docs/dashboards.md")
    _add_source_args(p)
    p.add_argument("--notebook", default="all",
                   choices=["all", "overview", "sales_manager", "marketing", "customer_service", "sales_rep"],
                   help="serve one dashboard, or all of them (default: all, with a landing page listing the views)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only). Any other address needs a "
                        "token (made for you when not given)")
    p.add_argument("--port", type=int, default=8866, help="port (default 8866; an error if taken)")
    p.add_argument("--token", default=None,
                   help="token viewers must add to the URL (?token=...); 'auto' makes a random one. Default: none "
                        "on 127.0.0.1, a random one on any other address")
    p.add_argument("--pool-size", type=int, default=2,
                   help="preheated kernels per dashboard, i.e. viewers served at once without waiting for a cold "
                        "start (default 2; ~0.4-0.9 GB each on the default demo; 0 = none)")
    p.add_argument("--cull-idle-timeout", type=int, default=900,
                   help="seconds after which an idle viewer's kernel is stopped (default 900)")
    p.add_argument("--refresh", default=None, metavar="SECONDS",
                   help="seconds between an open dashboard's checks for new data: when the source changed (files' "
                        "size or time, a database's tables) the page reloads it and re-renders its view (default "
                        "300, or $CRMLENS_DASHBOARD_REFRESH_S; 0 = only when a viewer clicks Refresh data)")
    p.add_argument("--print-command", action="store_true", help="print the Voila command line and exit")
    p.set_defaults(func=_cmd_dashboard)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `crmlens` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        return int(args.func(args))
    except CrmLensError as err:
        print(f"crmlens {args.command}: {type(err).__name__}: {err}", file=sys.stderr)
        return EXIT_USAGE if err.__class__.__name__ == "ParameterError" else EXIT_PROBLEM
    except OSError as err:  # a file the command was pointed at cannot be read or written: a plain message
        where = f" {err.filename}" if err.filename else ""
        print(f"crmlens {args.command}: cannot use{where}: {err.strerror or err}; check the path and its "
              f"permissions", file=sys.stderr)
        return EXIT_PROBLEM
    except Exception as err:
        if not type(err).__module__.lstrip("_").startswith("duckdb"):
            raise  # a bug, not a bad input: the traceback is what a report needs
        # the engine could not read the data (a file that changed or broke since it was checked...): a plain message
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"crmlens {args.command}: the data could not be read: {first[:300]}; run `crmlens validate` on the "
              f"source for the file and line at fault", file=sys.stderr)
        return EXIT_PROBLEM


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
