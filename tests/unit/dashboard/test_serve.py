"""Tests of crmlens.dashboard.serve: the Voila argv and environment (no server is started here), the offline
template, addresses and the dashboard source read from the environment."""

from __future__ import annotations

import json
import os
import re
import sys

import pytest

from crmlens import paths
from crmlens.charts import plotlyjs
from crmlens.dashboard import serve
from crmlens.dashboard.serve import (
    DASHBOARDS_DIR,
    JUPYTER_DATA_DIR,
    MAPPING_ENV,
    PAGE_PLOTLY_ENV,
    SOURCE_ENV,
    is_loopback,
    prepare_template,
    source_from_env,
    url_for,
    voila_command,
    voila_env,
)
from crmlens.errors import ParameterError

TEMPLATE_DIR = paths.PROJECT_ROOT / "lib" / "crmlens" / "dashboard" / "jupyter" / "voila" / "templates" / "crmlens"


def flag(argv: list[str], name: str) -> str | None:
    """The value of ``--name=value`` in argv (None when absent)."""
    values = [a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")]
    assert len(values) <= 1, f"{name} given twice: {values}"
    return values[0] if values else None


# ------------------------------------------------------------------------------------------ the command

def test_default_command_serves_the_dashboards_on_loopback():
    argv = voila_command()
    assert argv[:4] == [sys.executable, "-m", "voila", str(DASHBOARDS_DIR)]
    assert "--no-browser" in argv
    assert flag(argv, "Voila.ip") == "127.0.0.1" and flag(argv, "Voila.port") == "8866"
    assert flag(argv, "Voila.port_retries") == "0"
    assert flag(argv, "Voila.token") == ""
    assert flag(argv, "template") == "crmlens" == serve.TEMPLATE
    assert flag(argv, "theme") == "light" and flag(argv, "show_tracebacks") == "False"
    assert flag(argv, "preheat_kernel") == "True" and flag(argv, "pool_size") == "2"
    assert flag(argv, "MappingKernelManager.cull_idle_timeout") == "900"
    assert flag(argv, "MappingKernelManager.cull_interval") == "60"


def test_command_for_one_notebook_and_another_python(tmp_path):
    notebook = tmp_path / "overview.ipynb"
    notebook.write_text("{}")
    argv = voila_command(notebook, port=9001, python="/opt/py/bin/python", pool_size=3, cull_idle_timeout=0,
                         cull_interval=5)
    assert argv[:4] == ["/opt/py/bin/python", "-m", "voila", str(notebook)]
    assert flag(argv, "Voila.port") == "9001" and flag(argv, "pool_size") == "3"
    assert flag(argv, "MappingKernelManager.cull_idle_timeout") == "0"
    assert flag(argv, "MappingKernelManager.cull_interval") == "5"


def test_a_used_pool_kernel_is_replaced_after_the_preheat_delay(monkeypatch):
    """Voila replaces a pool kernel a viewer took only `PREHEAT_DELAY_S` later (its fill_delay), so that the
    replacement's start does not slow that viewer's page; the environment (or the server's) may change it."""
    monkeypatch.delenv(serve.PREHEAT_DELAY_ENV, raising=False)
    assert flag(voila_command(), "VoilaKernelManager.fill_delay") == "5" == f"{serve.PREHEAT_DELAY_S:g}"
    monkeypatch.setenv(serve.PREHEAT_DELAY_ENV, "0.5")
    assert flag(voila_command(), "VoilaKernelManager.fill_delay") == "0.5"
    assert flag(voila_command(env={serve.PREHEAT_DELAY_ENV: "0"}), "VoilaKernelManager.fill_delay") == "0"
    server = serve.VoilaServer(extra_env={serve.PREHEAT_DELAY_ENV: "7"})  # (not started)
    assert flag(server.argv, "VoilaKernelManager.fill_delay") == "7"
    for bad in ("-1", "soon", "inf", "nan"):
        with pytest.raises(ParameterError, match=f"CRMLENS_DASHBOARD_PREHEAT_DELAY: '{bad}' is not a number"):
            voila_command(env={serve.PREHEAT_DELAY_ENV: bad})


def test_pool_size_zero_turns_preheating_off():
    argv = voila_command(pool_size=0)
    assert flag(argv, "preheat_kernel") is None and flag(argv, "pool_size") is None
    assert not any("preheat" in a or "pool_size" in a for a in argv)
    assert flag(argv, "Voila.port_retries") == "0"


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "dashboards.example.com"])
def test_a_reachable_host_needs_a_token(host):
    for token in (None, ""):
        with pytest.raises(ParameterError, match=rf"^host: {host} is reachable from other machines"):
            voila_command(host=host, token=token)
    argv = voila_command(host=host, token="s3cret")
    assert flag(argv, "Voila.ip") == host and flag(argv, "Voila.token") == "s3cret"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_hosts_need_no_token(host):
    argv = voila_command(host=host)
    assert flag(argv, "Voila.ip") == host and flag(argv, "Voila.token") == ""
    assert flag(voila_command(host=host, token="t"), "Voila.token") == "t"


@pytest.mark.parametrize("port", [0, -1, 65536, 70000, "8866", 8866.0, True])
def test_bad_ports_are_refused(port):
    with pytest.raises(ParameterError, match=r"^port: .* is not a TCP port \(1–65535\)"):
        voila_command(port=port)


@pytest.mark.parametrize("port", [1, 8866, 65535])
def test_good_ports(port):
    assert flag(voila_command(port=port), "Voila.port") == str(port)


@pytest.mark.parametrize("name", ["pool_size", "cull_idle_timeout", "cull_interval"])
@pytest.mark.parametrize("value", [-1, 1.5, "2", True])
def test_counts_must_be_whole_numbers(name, value):
    with pytest.raises(ParameterError, match=rf"^{name}: .* is not a whole number ≥ 0"):
        voila_command(**{name: value})


def test_a_missing_target_is_refused(tmp_path):
    with pytest.raises(ParameterError, match=r"^dashboard: .*nowhere\.ipynb does not exist"):
        voila_command(tmp_path / "nowhere.ipynb")


def test_new_token_is_long_and_random():
    a, b = serve.new_token(), serve.new_token()
    assert a != b and len(a) >= 40 and all(c.isalnum() or c in "-_" for c in a)


def test_free_port_is_a_valid_port():
    assert 0 < serve.free_port() < 65536


# ------------------------------------------------------------------------------------------ environment

def test_voila_env_sets_the_source_and_the_template_path():
    base = {"PATH": "/usr/bin", "JUPYTER_PATH": f"/a{os.pathsep}/b", MAPPING_ENV: "old.yaml"}
    env = voila_env("/data/crm", "/data/mapping.yaml", base=base)
    assert env[SOURCE_ENV] == "/data/crm" and env[MAPPING_ENV] == "/data/mapping.yaml"
    assert env["JUPYTER_PATH"].split(os.pathsep) == [str(prepare_template()), "/a", "/b"]
    assert env[PAGE_PLOTLY_ENV] == "1"
    assert env["PATH"] == "/usr/bin"
    assert env[paths.HOME_ENV] == str(paths.PROJECT_ROOT) and env["PYTHONUNBUFFERED"] == "1"
    assert base == {"PATH": "/usr/bin", "JUPYTER_PATH": f"/a{os.pathsep}/b", MAPPING_ENV: "old.yaml"}  # untouched


def test_voila_env_without_mapping_drops_an_inherited_one():
    env = voila_env(base={MAPPING_ENV: "stale.yaml", paths.HOME_ENV: "/elsewhere"})
    assert env[SOURCE_ENV] == "demo" and MAPPING_ENV not in env
    assert env["JUPYTER_PATH"] == str(prepare_template())
    assert env[paths.HOME_ENV] == "/elsewhere"


def test_prepare_template_copies_the_template_and_plotly_js(tmp_path):

    root = prepare_template(tmp_path / "runtime")
    folder = root / "voila" / "templates" / "crmlens"
    committed = JUPYTER_DATA_DIR / "voila" / "templates" / "crmlens"
    for name in ("conf.json", "index.html.j2"):
        assert (folder / name).read_bytes() == (committed / name).read_bytes()
    js = (folder / "static" / "plotly.min.js").read_bytes()
    assert js == plotlyjs.full_path().read_bytes()
    assert (folder / "static" / "plotly-crmlens.min.js").read_bytes() == plotlyjs.BUNDLE.read_bytes()
    template = (folder / "index.html.j2").read_text()
    # the page preloads the bundle; the whole plotly.js is only named, for a chart the bundle cannot draw
    assert re.search(r'<link rel="preload" as="script" id="crmlens-plotly-js" href="[^"]*plotly-crmlens\.min\.js',
                     template)
    assert re.search(r'<meta name="crmlens-plotly-full" content="[^"]*static/plotly\.min\.js', template)
    # Voila's front end is fetched and evaluated while the kernel runs the cells (async), not after the last one
    script = template.index("<script async src=\"{{ page_config['fullStaticUrl'] | e }}/{{ main_js }}\"></script>")
    assert template.index('id="jupyter-config-data"') < script < template.index("cell_generator(nb, kernel_id)")
    assert "voila_setup_labextensions(" not in template
    assert prepare_template(tmp_path / "runtime") == root  # idempotent


def test_voila_env_defaults_to_the_process_environment(monkeypatch):
    monkeypatch.setenv("CRMLENS_TEST_MARKER", "yes")
    assert voila_env()["CRMLENS_TEST_MARKER"] == "yes"


def test_source_from_env():
    assert source_from_env({}) == ("demo", None)
    assert source_from_env({SOURCE_ENV: "", MAPPING_ENV: ""}) == ("demo", None)
    assert source_from_env({SOURCE_ENV: "/data/crm", MAPPING_ENV: "m.yaml"}) == ("/data/crm", "m.yaml")
    assert source_from_env(voila_env("postgresql://db/crm", base={})) == ("postgresql://db/crm", None)


def test_source_from_env_reads_os_environ(monkeypatch):
    monkeypatch.setenv(SOURCE_ENV, "/x/y")
    monkeypatch.delenv(MAPPING_ENV, raising=False)
    assert source_from_env() == ("/x/y", None)


# ------------------------------------------------------------------------------------------ the template

def test_the_template_folder_is_shipped_and_offline():
    assert JUPYTER_DATA_DIR / "voila" / "templates" / "crmlens" == TEMPLATE_DIR
    assert json.loads((TEMPLATE_DIR / "conf.json").read_text()) == {"base_template": "lab"}
    page = (TEMPLATE_DIR / "index.html.j2").read_text(encoding="utf-8")
    markup = re.sub(r"\{#.*?#\}", "", page, flags=re.S)  # Jinja comments (which may cite a URL) are not output
    assert "extends 'nbconvert/templates/lab/index.html.j2'" in markup
    assert "cdn." not in markup and "https://" not in markup and "http://" not in markup
    for tag in re.findall(r"<(?:link|script|img|iframe)\b[^>]*>", markup):
        assert not re.search(r"(?:src|href)\s*=\s*[\"']?(?:https?:)?//", tag), tag


def test_the_dashboards_folder_holds_the_views():
    assert {p.name for p in DASHBOARDS_DIR.glob("*.ipynb")} >= {"overview.ipynb", "sales_manager.ipynb"}


# ------------------------------------------------------------------------------------------ addresses

@pytest.mark.parametrize(("host", "expected"), [
    ("127.0.0.1", True), ("127.5.6.7", True), ("localhost", True), ("::1", True),
    ("0.0.0.0", False), ("::", False), ("10.0.0.1", False), ("192.168.0.2", False), ("example.com", False),
    ("", False), ("localhost.example.com", False),
])
def test_is_loopback(host, expected):
    assert is_loopback(host) is expected


def test_url_for():
    assert url_for("127.0.0.1", 8866) == "http://127.0.0.1:8866/"
    assert url_for("127.0.0.1", 8866, notebook="overview") == "http://127.0.0.1:8866/voila/render/overview.ipynb"
    assert url_for("localhost", 9000, "tok", "sales_manager.ipynb") == \
        "http://localhost:9000/voila/render/sales_manager.ipynb?token=tok"
    assert url_for("0.0.0.0", 8866, "tok") == "http://127.0.0.1:8866/?token=tok"
    assert url_for("::", 8866) == "http://127.0.0.1:8866/"
    assert url_for("::1", 8866, notebook="overview") == "http://[::1]:8866/voila/render/overview.ipynb"
    assert url_for("192.168.1.20", 80, "") == "http://192.168.1.20:80/"


def test_the_pages_skip_front_end_extensions_they_do_not_use():
    argv = voila_command()
    assert "--VoilaConfiguration.extension_denylist=jupyterlab-plotly" in argv  # one flag per item (traitlets 5)
    assert "--VoilaConfiguration.extension_denylist=jupyterlab_pygments" in argv
    assert f"--NotebookClient.iopub_timeout={serve.IOPUB_TIMEOUT_S}" in argv


def test_a_server_whose_port_is_taken_before_it_listens_moves_to_another(tiny_demo):
    """The free port chosen for a server can be taken before Voila listens on it (in the suite, by a kernel's
    ZeroMQ socket, which accepts connections but answers no HTTP): the server starts again on another port,
    and is ready only when Voila itself answers."""
    import socket
    import urllib.request

    server = serve.VoilaServer(pool_size=0, source=str(tiny_demo))
    taken = server.port
    with socket.socket() as squatter:
        squatter.bind((server.host, taken))
        squatter.listen()
        with server:
            assert server.port != taken and server.process.poll() is None
            assert f"--Voila.port={server.port}" in server.argv
            with urllib.request.urlopen(server.url(), timeout=30) as answer:
                assert answer.status == 200 and b"voila-tree-main" in answer.read()  # Voila, not the squatter
    with pytest.raises(RuntimeError, match="is already in use"), socket.socket() as squatter:
        squatter.bind((server.host, 0))
        squatter.listen()
        serve.VoilaServer(port=squatter.getsockname()[1], pool_size=0, source=str(tiny_demo)).start()
