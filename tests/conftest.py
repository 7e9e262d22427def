"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from crmlens import paths

MAVEN_DIR = paths.PROJECT_ROOT.parent / "shared" / "data" / "maven_crm"
MAVEN_MAPPING = paths.SOURCES_DIR / "maven_crm.yaml"
TINY_SEED = 7


@pytest.fixture(scope="session")
def maven_dir() -> Path:
    if not (MAVEN_DIR / "sales_pipeline.csv").is_file():
        pytest.skip(f"the Maven CRM export is not at {MAVEN_DIR} (shared/data must sit beside the project)")
    return MAVEN_DIR


@pytest.fixture(scope="session")
def maven_con(maven_dir):
    from crmlens import data

    return data.connect(maven_dir, MAVEN_MAPPING)


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory) -> Path:
    """The tiny demo dataset (seed 7), generated once per test session."""
    from crmlens import demo

    out = tmp_path_factory.mktemp("demo_tiny")
    demo.generate(scale="tiny", seed=TINY_SEED, out=out)
    return out


# ------------------------------------------------------------------------------------- PostgreSQL

def _pg_bin(name: str) -> str:
    import glob
    import shutil

    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if not found:
        pytest.fail(f"PostgreSQL's {name} is not installed; `make test` installs it (make system-deps)")
    return found


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server():
    """A throw-away PostgreSQL server on 127.0.0.1 (trust auth), stopped at the end of the session.

    Yields the base URL (without database). As root, the server runs as the `postgres` system user,
    since PostgreSQL refuses to run as root.
    """
    import os
    import shutil
    import subprocess
    import tempfile

    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    workdir = Path(tempfile.mkdtemp(prefix="crmlens-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        import pwd

        user = pwd.getpwnam("postgres")
        os.chown(workdir, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    datadir, log = workdir / "data", workdir / "server.log"
    port = _free_port()
    subprocess.run([*prefix, initdb, "-D", str(datadir), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                    "--no-sync"], check=True, capture_output=True)
    options = f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
    subprocess.run([*prefix, pg_ctl, "-D", str(datadir), "-o", options, "-l", str(log), "-w", "-t", "60", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", str(datadir), "-m", "immediate", "-w", "stop"], capture_output=True)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_demo(postgres_server, tiny_demo) -> str:
    """The tiny demo loaded into a fresh PostgreSQL database; yields its URL."""
    import ibis
    import pandas as pd
    import psycopg

    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as conn:
        conn.execute("CREATE DATABASE crm")
    url = f"{postgres_server}/crm"
    con = ibis.connect(url)
    for path in sorted(tiny_demo.glob("*.parquet")):
        con.create_table(path.stem, pd.read_parquet(path))
    con.disconnect()
    return url


def _env_folder(tmp_path_factory, name: str, env: str):
    """A temporary folder named by environment variable `env` for the session (inherited by the kernels and
    servers the tests start), the variable restored afterwards."""
    import os

    folder = tmp_path_factory.mktemp(name)
    before = os.environ.get(env)
    os.environ[env] = str(folder)
    yield folder
    if before is None:
        os.environ.pop(env, None)
    else:
        os.environ[env] = before


@pytest.fixture(scope="session", autouse=True)
def validated_store(tmp_path_factory):
    """Validated sources (crmlens.store) go to a temporary folder for the session, never to outputs/."""
    from crmlens.store import STORE_DIR_ENV

    yield from _env_folder(tmp_path_factory, "store", STORE_DIR_ENV)


@pytest.fixture(scope="session", autouse=True)
def dashboard_cache(tmp_path_factory):
    """Dashboards built by the tests (and the Voila servers they start) share results in a temporary folder,
    never in the project's outputs/."""
    from crmlens.dashboard.model import CACHE_ENV

    yield from _env_folder(tmp_path_factory, "dashboard_cache", CACHE_ENV)


@pytest.fixture(scope="session", autouse=True)
def _no_computing_ahead():
    """Dashboards in tests (and the Voila servers they start) compute no filter states ahead
    (`crmlens.dashboard.ahead`): every test's dashboard would otherwise keep computing beside the suite.
    tests/unit/dashboard/test_ahead.py turns it on where it tests it."""
    from crmlens.dashboard.ahead import AHEAD_ENV

    before = os.environ.get(AHEAD_ENV)
    os.environ[AHEAD_ENV] = "0"
    yield
    if before is None:
        os.environ.pop(AHEAD_ENV, None)
    else:
        os.environ[AHEAD_ENV] = before


@pytest.fixture(autouse=True)
def _keep_the_language():
    """A dashboard makes its language the process's (as in a kernel: `crmlens.i18n.use`): every test gets the
    previous one back, so a test that showed a Chinese view never leaves the next test of its worker in 中文."""
    from crmlens import i18n

    before = i18n.current()
    yield
    i18n.use(before)
