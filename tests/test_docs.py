"""The documentation site: it builds with warnings as errors, documents every public name, and
renders in a real browser (headless Chromium) with no console errors and a working search."""

import importlib
import importlib.util
import inspect
import os
import pkgutil
import re
import shutil
import socket
import subprocess
import sys
import time
import warnings
import zlib
from pathlib import Path

import pytest

import keras_nrae

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SHOTS = Path(os.environ.get("KERAS_NRAE_DOCS_SHOTS", "/tmp/docs-shots"))


def _hook():
    """docs/hooks/reference.py, the MkDocs hook that generates the API reference pages."""
    spec = importlib.util.spec_from_file_location("docs_reference_hook", DOCS / "hooks" / "reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _member(module, name):
    """module.name, importing it if it is a submodule the package does not import itself."""
    try:
        return getattr(module, name)
    except AttributeError:
        return importlib.import_module(f"{module.__name__}.{name}")


def _public_names():
    """(module, name, object) for each entry of keras_nrae.__all__ and of each public module's __all__."""
    modules = ["keras_nrae"] + [
        info.name for info in pkgutil.walk_packages(keras_nrae.__path__, "keras_nrae.")
        if not any(part.startswith("_") for part in info.name.split("."))
    ]
    names = []
    for module_name in modules:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # keras_nrae.data, the deprecated alias
            module = importlib.import_module(module_name)
        for name in module.__all__:
            try:
                names.append((module_name, name, _member(module, name)))
            except ImportError:  # keras_nrae.NRAE without scikit-learn: checked by its path only
                names.append((module_name, name, None))
    return names


def _resolve(identifier):
    try:
        return importlib.import_module(identifier)
    except ImportError:
        module, _, name = identifier.rpartition(".")
        return _member(_resolve(module), name)


def _directives(pages):
    """[(identifier, members or None for all, False for none)] of every `::: identifier` in pages."""
    found = []
    for text in pages.values():
        for match in re.finditer(r"^::: *([\w.]+)[ \t]*\n((?:[ \t]+.*\n?)*)", text, re.M):
            options = match.group(2)
            members = re.search(r"^\s+members:\s*(.+)$", options, re.M)
            value = None
            if members:
                raw = members.group(1).strip()
                value = False if raw == "false" else re.findall(r"[\w]+", raw)
            found.append((match.group(1), value))
    return found


def undocumented(pages):
    """The public names ("module.name") that no `:::` directive of `pages` documents."""
    paths, objects = set(), set()
    for identifier, members in _directives(pages):
        paths.add(identifier)
        obj = _resolve(identifier)
        objects.add(id(obj))
        if inspect.ismodule(obj) and members is not False:
            for name in members if members is not None else obj.__all__:
                paths.add(f"{identifier}.{name}")
                objects.add(id(_member(obj, name)))
    missing = []
    for module, name, obj in _public_names():
        by_identity = obj is not None and (inspect.isclass(obj) or inspect.isroutine(obj) or inspect.ismodule(obj))
        if f"{module}.{name}" not in paths and not (by_identity and id(obj) in objects):
            missing.append(f"{module}.{name}")
    return missing


def _site_pages(hook):
    pages = {p.relative_to(DOCS).as_posix(): p.read_text() for p in DOCS.rglob("*.md")}
    pages.update(hook.reference_pages())
    return pages


def test_every_public_name_has_a_reference_page():
    hook = _hook()
    missing = undocumented(_site_pages(hook))
    assert not missing, (
        f"no API reference page documents {missing}: add the module to EXTRA_MODULES in "
        "docs/hooks/reference.py (or to keras_nrae.__all__)")


def test_a_module_left_out_of_the_reference_is_caught():
    hook = _hook()
    hook.EXTRA_MODULES.remove("keras_nrae.cli")
    assert undocumented(_site_pages(hook)) == ["keras_nrae.cli.main"]


def test_the_reference_pages_follow_keras_nrae_all():
    pages = _hook().reference_pages()
    for name in keras_nrae.__all__:
        obj = getattr(keras_nrae, name)
        if inspect.ismodule(obj):
            assert f"::: {obj.__name__}\n" in pages[f"reference/{name}.md"], name
    assert "| [`NeighborGraph`][keras_nrae.graph.NeighborGraph] |" in pages["reference/index.md"]


# -- the build -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings") is None:
        pytest.skip('the site needs the docs extra: pip install -e ".[docs]"')
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "NO_MKDOCS_2_WARNING": "1"}
    start = time.monotonic()
    build = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    return out, build, time.monotonic() - start


def test_site_builds_with_warnings_as_errors(site):
    out, build, seconds = site
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-6000:]
    for page in ["index.html", "getting-started/index.html", "guides/data/index.html",
                 "reference/graph/index.html", "results/table1/index.html", "search/search_index.json"]:
        assert (out / page).is_file(), page
    print(f"mkdocs build --strict: {seconds:.1f} s")


def _inventory(out):
    data = (out / "objects.inv").read_bytes()
    body = zlib.decompress(data.split(b"\n", 4)[4]).decode()
    return {line.split(" ", 1)[0] for line in body.splitlines()}


def test_the_built_reference_renders_every_public_name(site):
    out, build, _ = site
    assert build.returncode == 0, build.stderr[-3000:]
    inventory = _inventory(out)
    missing = []
    for module, name, obj in _public_names():
        canonical = (obj.__name__ if inspect.ismodule(obj) else
                     f"{obj.__module__}.{obj.__qualname__}" if hasattr(obj, "__qualname__") else None)
        if f"{module}.{name}" not in inventory and canonical not in inventory:
            missing.append(f"{module}.{name}")
    assert not missing, f"the built site's objects.inv lacks {missing}"


# -- in a browser ----------------------------------------------------------------------------


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.fixture(scope="module")
def served(site):
    """The built site on http://127.0.0.1:PORT/ (Material's search needs http, not file://)."""
    out, build, _ = site
    assert build.returncode == 0, build.stderr[-3000:]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/"
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture(scope="module")
def browser():
    binary = _chromium()
    if binary is None:
        pytest.skip("no Chromium here (Debian: apt-get install chromium)")
    from _cdp import Browser

    chromium = Browser(binary)
    chromium.call("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1, mobile=False)
    yield chromium
    chromium.close()


@pytest.mark.parametrize("path, text, shot", [
    ("", "Neighborhood Reconstructing Autoencoders", "landing.png"),
    ("guides/data/", "A worked path", "guide-data.png"),
])
def test_page_renders_without_console_errors(served, browser, path, text, shot):
    browser.open(served + path)
    assert text in browser.evaluate("document.body.innerText")
    assert browser.evaluate("document.querySelector('.md-nav') !== null"), "Material's navigation is missing"
    broken = browser.evaluate(
        "[...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)")
    assert broken == [], f"images that did not load: {broken}"
    time.sleep(1.0)  # scripts that fail late (the search worker) report by now
    browser.evaluate("1")
    assert browser.console_errors() == []
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.screenshot(str(SHOTS / shot))


def test_search_finds_neighbor_graph(site, served, browser):
    import json

    out, _, _ = site
    index = json.loads((out / "search" / "search_index.json").read_text())
    assert any(doc["location"].startswith("reference/graph/") and "NeighborGraph" in doc["title"]
               for doc in index["docs"])
    browser.open(served)
    browser.evaluate("document.querySelector('label[for=\"__search\"]').click();"
                     "document.querySelector('input.md-search__input').focus()")
    browser.call("Input.insertText", text="NeighborGraph")  # typed, as a reader types
    found = browser.wait_until(
        "[...document.querySelectorAll('.md-search-result__item')]"
        ".some(item => item.innerText.includes('NeighborGraph'))", timeout=20)
    results = browser.evaluate("document.querySelector('.md-search-result') ? "
                               "document.querySelector('.md-search-result').innerText : ''")
    first = browser.evaluate("(document.querySelector('.md-search-result__item a') || {}).href || ''")
    visible = browser.evaluate("document.querySelector('.md-search-result__list').getBoundingClientRect().height")
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.screenshot(str(SHOTS / "search.png"))
    assert found, f"the search box did not list NeighborGraph; it shows: {results[:500]!r}"
    assert "reference/graph/" in first and visible > 0, (first, visible)
    assert browser.console_errors() == []


def test_readme_links_into_the_site_exist():
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(((?!https?://)[^)#\s]+)(?:#[^)]*)?\)", readme)
    assert any(t.startswith("docs/") for t in targets), targets
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"
