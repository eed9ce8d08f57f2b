"""The image venv slimmer removes what no service loads and keeps everything a service imports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from edgeinspect.core import venvslim


def _file(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    """A venv shaped like an image's: the installer, tests, stubs, bytecode, Pillow and its libraries."""
    root = tmp_path / "venv"
    site = root / "lib/python3.11/site-packages"
    for path in (
        "pip/__init__.py",
        "pip-25.0.dist-info/RECORD",
        "setuptools/__init__.py",
        "_distutils_hack/__init__.py",
        "distutils-precedence.pth",
        "numpy/__init__.py",
        "numpy/_core/tests/test_a.py",
        "numpy/_core/_multiarray_tests.cpython-311-x86_64-linux-gnu.so",
        "numpy/f2py/__init__.py",
        "numpy/__init__.pyi",
        "numpy/__pycache__/__init__.cpython-311.pyc",
        "edgeinspect/__init__.py",
        "edgeinspect_camera/__init__.py",
        "edgeinspect_ui/__init__.py",
        "edgeinspect-0.1.0.dist-info/RECORD",
    ):
        _file(site / path)
    # Pillow: the core module links libjpeg; WebP links libwebp, which links libsharpyuv; the font
    # module links freetype and harfbuzz, which link each other
    _file(site / "PIL/_imaging.cpython-311-x86_64-linux-gnu.so", b"\0libjpeg-1a.so.62\0")
    _file(site / "PIL/_webp.cpython-311-x86_64-linux-gnu.so", b"\0libwebp-2b.so.7\0")
    _file(site / "PIL/_imagingft.cpython-311-x86_64-linux-gnu.so", b"\0libfreetype-3c.so.6\0")
    libs = site / "pillow.libs"
    _file(libs / "libjpeg-1a.so.62", b"\0libjpeg-1a.so.62\0")
    _file(libs / "libwebp-2b.so.7", b"\0libwebp-2b.so.7\0libsharpyuv-4d.so.0\0")
    _file(libs / "libsharpyuv-4d.so.0")
    _file(libs / "libfreetype-3c.so.6", b"\0libharfbuzz-5e.so.0\0")
    _file(libs / "libharfbuzz-5e.so.0", b"\0libfreetype-3c.so.6\0")
    _file(root / "bin/pip")
    _file(root / "bin/f2py")
    _file(root / "bin/edgeinspect-camera")
    return root


def _left(venv: Path) -> set[str]:
    return {str(p.relative_to(venv)) for p in venv.rglob("*") if p.is_file()}


def test_slim_keeps_what_the_service_imports(venv: Path) -> None:
    venvslim.slim(venv, keep={"edgeinspect_camera"})
    site = "lib/python3.11/site-packages"
    assert _left(venv) == {
        f"{site}/numpy/__init__.py",
        f"{site}/edgeinspect/__init__.py",
        f"{site}/edgeinspect_camera/__init__.py",
        f"{site}/edgeinspect-0.1.0.dist-info/RECORD",
        f"{site}/PIL/_imaging.cpython-311-x86_64-linux-gnu.so",
        f"{site}/pillow.libs/libjpeg-1a.so.62",
        "bin/edgeinspect-camera",
    }


def test_bundled_library_still_linked_stays(venv: Path) -> None:
    site = venv / "lib/python3.11/site-packages"
    # a module outside Pillow that links harfbuzz keeps it, and freetype with it
    _file(site / "other/_ext.so", b"\0libharfbuzz-5e.so.0\0")
    venvslim.slim(venv, keep={"edgeinspect_camera"})
    assert (site / "pillow.libs/libharfbuzz-5e.so.0").exists()
    assert (site / "pillow.libs/libfreetype-3c.so.6").exists()
    assert not (site / "pillow.libs/libsharpyuv-4d.so.0").exists()


def test_bytecode_can_stay(venv: Path) -> None:
    venvslim.slim(venv, keep={"edgeinspect_camera"}, bytecode=False)
    assert (venv / "lib/python3.11/site-packages/numpy/__pycache__/__init__.cpython-311.pyc").exists()


def test_main_reports_what_it_freed(venv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert venvslim.main([str(venv), "--keep", "edgeinspect_camera"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kept"] == ["edgeinspect_camera"] and report["freed_mb"] >= 0


def test_not_a_venv_is_refused_with_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="site-packages"):
        venvslim.slim(tmp_path, keep=())
    with pytest.raises(SystemExit):
        venvslim.main([str(tmp_path / "missing")])


def test_keep_project_keeps_every_project_package(venv: Path) -> None:
    assert venvslim.main([str(venv), "--keep-project"]) == 0
    assert (venv / "lib/python3.11/site-packages/edgeinspect_ui/__init__.py").exists()
