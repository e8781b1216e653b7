"""The install as users do it: the wheel's contents, and the wheel installed into a new venv.

The venv sees this environment's packages after its own (a `.pth` file adds
them; TensorFlow and the rest are not downloaded again, `.ci/run`'s own install
checks that they resolve), and `pip check` there proves the wheel's
requirements are met by them.
"""

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from keras_nrae._version import __version__

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(ROOT)],
        check=True, capture_output=True, timeout=600,
    )
    [built] = out.glob("keras_nrae-*.whl")
    return built


def test_wheel_holds_the_package_and_paper_but_no_tests_or_benchmarks(wheel):
    assert wheel.name.startswith(f"keras_nrae-{__version__}-")
    names = zipfile.ZipFile(wheel).namelist()
    assert "keras_nrae/__init__.py" in names and "keras_nrae_cli.py" in names
    assert {f"keras_nrae/paper/{m}.py" for m in ("__init__", "experiments", "image_benchmark", "toy")} <= set(names)
    tops = {name.split("/")[0] for name in names}
    assert not tops & {"tests", "benchmarks", "examples", "docs"}, tops
    assert "keras-nrae = keras_nrae_cli:main" in zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith("entry_points.txt"))
    ).decode()


def test_wheel_installs_into_a_new_venv_and_runs(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    venv_site = Path(sysconfig.get_path("purelib", vars={"base": str(env_dir)}))
    ours = sorted({sysconfig.get_paths()[key] for key in ("purelib", "platlib")})
    (venv_site / "this_environment.pth").write_text(
        "".join(f"import site; site.addsitedir({path!r})\n" for path in ours)
    )
    bin_dir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    run = lambda *argv: subprocess.run(  # noqa: E731
        argv, cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=900
    )
    installed = run(str(bin_dir / "python"), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(wheel))
    assert installed.returncode == 0, installed.stderr[-3000:]
    checked = run(str(bin_dir / "python"), "-m", "pip", "check")
    assert checked.returncode == 0, checked.stdout[-3000:]  # every requirement of the wheel is met
    imported = run(str(bin_dir / "python"), "-c", "import keras_nrae; print(keras_nrae.__file__)")
    assert imported.returncode == 0, imported.stderr[-3000:]
    assert Path(imported.stdout.strip()).is_relative_to(env_dir)  # not the source tree
    helped = run(str(bin_dir / "keras-nrae"), "demo", "--help")
    assert helped.returncode == 0 and "usage: keras-nrae demo" in helped.stdout, helped.stderr[-3000:]
