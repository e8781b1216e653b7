"""Run the ```python blocks of a Markdown page as its reader would: in order, in one namespace.

A block may be preceded by an HTML comment (invisible on the rendered page) that says how
the test runs it, as JSON:

    <!-- docs-test {"shrink": {"epochs=20": "epochs=1"}, "check": "model.order == 2"} -->

- "skip": "why"               the block is not run here (say where it is tested instead);
- "needs": ["sklearn", ...]   modules without which the page is skipped (optional extras);
- "setup": "name"             call SETUPS[name](namespace) first (e.g. write a folder of images);
- "before": "code"            run first, unseen by the reader (data or a model the page assumes);
- "shrink": {old: new}        replace text in the block, to run it on less data or fewer steps;
                              each `old` must be in the block, so a stale entry fails;
- "if_missing": {module: {old: new}}  replacements made only when `module` is not installed;
- "check": "expression"       must be true in the namespace after the block ran;
- "after": "code"             run after the page, even when it failed (undo global state).
"""

import importlib.util
import json
import re
from pathlib import Path

import numpy as np

BLOCK = re.compile(r"(?:<!-- docs-test (?P<spec>\{.*?\}) -->\n)?```python\n(?P<code>.*?)```", re.S)
KEYS = {"skip", "needs", "setup", "before", "shrink", "if_missing", "check", "after"}


def python_blocks(path: Path):
    """[(line number, code, spec)] of every ```python block of the page."""
    text = path.read_text()
    blocks = []
    for match in BLOCK.finditer(text):
        spec = json.loads(match.group("spec")) if match.group("spec") else {}
        unknown = set(spec) - KEYS
        assert not unknown, f"{path}: unknown docs-test keys {sorted(unknown)}"
        line = text.count("\n", 0, match.start("code")) + 1
        blocks.append((line, match.group("code"), spec))
    return blocks


def shrunk(code: str, replacements: dict, where: str) -> str:
    for old, new in replacements.items():
        assert old in code, f"{where}: the block no longer contains {old!r}"
        code = code.replace(old, new)
    return code


def missing_modules(blocks) -> list:
    return sorted({m for _, _, spec in blocks for m in spec.get("needs", ())
                   if importlib.util.find_spec(m) is None})


def run_page(path: Path, setups: dict) -> dict:
    """Run every block of `path` that is not marked "skip"; returns the namespace."""
    namespace = {"__name__": "__docs__"}
    afters = []
    try:
        for line, code, spec in python_blocks(path):
            where = f"{path.name}:{line}"
            if "after" in spec:
                afters.append(spec["after"])
            if "skip" in spec:
                assert spec["skip"].strip(), f"{where}: say why the block is skipped"
                continue
            if "setup" in spec:
                setups[spec["setup"]](namespace)
            if "before" in spec:
                exec(compile(spec["before"], f"{where} (before)", "exec"), namespace)
            code = shrunk(code, spec.get("shrink", {}), where)
            for module, replacements in spec.get("if_missing", {}).items():
                if importlib.util.find_spec(module) is None:
                    code = shrunk(code, replacements, where)
            exec(compile(code, where, "exec"), namespace)
            if "check" in spec:
                assert eval(spec["check"], {"np": np, "os": __import__("os"), **namespace}), (
                    f"{where}: {spec['check']} is false")
    finally:
        for code in afters:
            exec(code, namespace)
    return namespace
