"""MkDocs hook: the API reference, one generated page per public module of keras_nrae.

The list of pages comes from `keras_nrae.__all__`: each module it names gets a page, and so
does the module that defines each class or function it names (`keras_nrae.graph` for
`NeighborGraph`). Names defined in a private module (`FileFormatError`) are documented on
the package's own page. A public module that `keras_nrae.__all__` does not reach is added
with one line in `EXTRA_MODULES`; `tests/test_docs.py` fails while a public name has no page.

`reference_pages()` is plain Python, so the tests can check the pages without MkDocs.
"""

import importlib
import importlib.util
import inspect
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

PACKAGE = "keras_nrae"
SECTION = "API reference"  # the nav entry whose children are the generated pages

# Public modules that keras_nrae.__all__ does not reach; one line each.
EXTRA_MODULES = [
    "keras_nrae.taylor.layerwise",
    "keras_nrae.taylor.autodiff",
    "keras_nrae.taylor.streams",
    "keras_nrae.taylor.activations",
    "keras_nrae.paper",
    "keras_nrae.paper.toy",
    "keras_nrae.paper.experiments",
    "keras_nrae.paper.image_benchmark",
    "keras_nrae.cli",
    "keras_nrae.demo",
    "keras_nrae.records",
]

# Files outside docs/ that pages show: {path in the site: path in the repository}.
EXTERNAL_FILES = {"results/margin.png": "benchmarks/results/margin/margin.png"}

def _page(module: str) -> str:
    return "reference/index.md" if module == PACKAGE else f"reference/{module[len(PACKAGE) + 1:]}.md"


def reference_modules() -> list:
    """The documented modules, in nav order: the package, homes of its names, its modules, extras."""
    package = importlib.import_module(PACKAGE)
    homes, modules = [], []
    for name in package.__all__:
        try:
            obj = getattr(package, name)
        except ImportError as error:  # keras_nrae.NRAE needs scikit-learn: the `docs` extra has it
            raise ImportError(f"{PACKAGE}.{name} cannot be imported to document it: {error}") from error
        if inspect.ismodule(obj):
            modules.append(obj.__name__)
        elif not any(part.startswith("_") for part in obj.__module__.split(".")):
            homes.append(obj.__module__)
    gone = [m for m in EXTRA_MODULES if importlib.util.find_spec(m) is None]
    if gone:
        raise ImportError(f"docs/hooks/reference.py: EXTRA_MODULES names {gone}, which do not exist: remove their lines")
    return list(dict.fromkeys([PACKAGE, *homes, *sorted(modules), *EXTRA_MODULES]))


def _private_names() -> list:
    """Names in keras_nrae.__all__ whose home is a private module: documented on the package page."""
    package = importlib.import_module(PACKAGE)
    names = []
    for name in package.__all__:
        obj = getattr(package, name)
        if not inspect.ismodule(obj) and any(p.startswith("_") for p in obj.__module__.split(".")):
            names.append(name)
    return names


def _package_page(modules: list) -> str:
    package = importlib.import_module(PACKAGE)
    lines = [
        f"# `{PACKAGE}`",
        "",
        f"::: {PACKAGE}",
        "    options:",
        "      members: false",
        "      show_root_heading: false",
        "",
        f"Every name in `{PACKAGE}.__all__` and where it is documented:",
        "",
        "| name | documented in |",
        "|---|---|",
    ]
    private = _private_names()
    for name in package.__all__:
        obj = getattr(package, name)
        if name in private:
            target, home = f"{PACKAGE}.{name}", PACKAGE
        elif not inspect.ismodule(obj):
            home = obj.__module__
            target = f"{home}.{name}"
        else:
            target = home = obj.__name__
        lines.append(f"| [`{name}`][{target}] | [`{home}`]({_page(home)[len('reference/'):]}) |")
    for name in private:
        lines += ["", f"::: {PACKAGE}.{name}", "    options:", "      heading_level: 2"]
    return "\n".join(lines) + "\n"


def reference_pages() -> dict:
    """{page path under docs/: Markdown} for every documented module."""
    modules = reference_modules()
    pages = {_page(PACKAGE): _package_page(modules)}
    for module in modules[1:]:
        pages[_page(module)] = f"::: {module}\n"  # its root heading is the page's title
    return pages


def on_config(config):
    # Document this checkout's keras_nrae, not whichever one `pip install -e` pointed at.
    root = os.path.dirname(os.path.abspath(config.config_file_path))
    if sys.path[0] != root:
        sys.path.insert(0, root)
    for entry in config["nav"] or []:
        if isinstance(entry, dict) and SECTION in entry:
            entry[SECTION] = [{module: _page(module)} for module in reference_modules()]
    return config


def on_files(files, config):
    from mkdocs.structure.files import File

    for path, content in reference_pages().items():
        files.append(File.generated(config, path, content=content))
    root = os.path.dirname(os.path.abspath(config.config_file_path))
    for path, source in EXTERNAL_FILES.items():
        files.append(File.generated(config, path, abs_src_path=os.path.join(root, source)))
    return files
