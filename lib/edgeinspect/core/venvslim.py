"""Slim an image's virtual environment after ``pip install``: what a running service never loads.

Run by every Dockerfile's build stage (``PYTHONPATH=lib python -m edgeinspect.core.venvslim /opt/venv
--keep edgeinspect_camera``) before the runtime stage copies ``/opt/venv``. Why: the edge images must
stay within the base image plus 250 MB (docs/deploy.md "Images"), and a third of a fresh venv is
the installer itself (pip, setuptools), the packages' own test suites and test-only extension
modules, type stubs, the project's other services, and bytecode caches. The bytecode goes because
the containers run with a read-only root file system: Python compiles what it imports in memory at
start (a second or two), exactly as it would with ``PYTHONDONTWRITEBYTECODE``; nothing at run time
differs. Nothing imported at run time is removed; the image tests import every service module in
the built images (tests/containers).

Standard library only: it runs on the base image's Python before the venv is usable.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

# the installer and its helpers: a service never installs packages at run time
INSTALLER = ("pip", "setuptools", "pkg_resources", "_distutils_hack", "wheel", "distutils-precedence.pth")
INSTALLER_DISTS = ("pip", "setuptools", "wheel")
# directories that hold a package's own test suite, never imported by the package itself
TEST_DIRS = ("tests",)
# numpy's test-only extension modules (numpy/_core/_*_tests*.so, the SIMD test module _simd) and its
# build tools (f2py, distutils: for compiling extensions, never imported by a service)
TEST_MODULE_GLOBS = (
    "numpy/_core/_*tests*.so",
    "numpy/_core/_simd.*.so",
    "numpy/f2py",
    "numpy/distutils",
    "numpy/_pyinstaller",
)
# Pillow's optional codecs no service uses (the project reads and writes PNG, JPEG, BMP and TIFF and
# draws no text): AVIF, WebP, FreeType fonts, ICC colour management. Pillow imports each lazily and
# reports the format unsupported without it; the bundled libraries only they load go with them.
PILLOW_OPTIONAL = ("PIL/_avif.*.so", "PIL/_webp.*.so", "PIL/_imagingft.*.so", "PIL/_imagingcms.*.so")
BUNDLED_LIBS = ("pillow.libs",)
PROJECT_PREFIX = "edgeinspect_"


def site_packages(venv: Path) -> Path:
    """The venv's one ``lib/python3.X/site-packages`` folder."""
    found = sorted(venv.glob("lib/python3.*/site-packages"))
    if len(found) != 1:
        raise SystemExit(
            f"{venv}: expected one lib/python3.*/site-packages, found {len(found)}; is it a venv?"
        )
    return found[0]


def _size(path: Path) -> int:
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() or p.is_symlink())


def removable(venv: Path, keep: Iterable[str], bytecode: bool = True) -> Iterator[Path]:
    """Every path the slim step removes; ``keep`` ``{"*"}`` keeps every project package."""
    site = site_packages(venv)
    keep = set(keep)
    for name in INSTALLER:
        if (site / name).exists():
            yield site / name
    for dist in INSTALLER_DISTS:
        yield from site.glob(f"{dist}-*.dist-info")
    yield from (p for p in venv.glob("bin/pip*") if p.is_file() or p.is_symlink())
    for path in sorted(site.glob(f"{PROJECT_PREFIX}*")):
        if path.is_dir() and path.name not in keep and "*" not in keep:
            yield path
    for name in TEST_DIRS:
        yield from (p for p in sorted(site.glob(f"*/**/{name}")) if p.is_dir() and _outside(p, site, keep))
    for pattern in TEST_MODULE_GLOBS:
        yield from sorted(site.glob(pattern))
    yield from sorted(site.glob("**/*.pyi"))
    yield from (p for p in venv.glob("bin/f2py*") if p.is_file())
    for pattern in PILLOW_OPTIONAL:
        yield from sorted(site.glob(pattern))
    if bytecode:
        yield from (p for p in sorted(venv.glob("**/__pycache__")) if p.is_dir())


def _outside(path: Path, site: Path, keep: set[str]) -> bool:
    """A test folder of a third-party package (the project's own packages keep theirs, if any)."""
    top = path.relative_to(site).parts[0]
    return not top.startswith(PROJECT_PREFIX) and top not in keep and top not in INSTALLER


def unreferenced_libs(venv: Path) -> list[Path]:
    """Bundled shared libraries (``<dist>.libs/``) that nothing left in the venv loads.

    A library's file name appears in the dynamic section of each object that links it. Starting from
    every extension module and every other library (the roots), the bundled libraries a root names are
    used, then those they name, and so on; the rest go. Finding a name in a file's bytes may see a use
    that is not one, never the other way round, so a library still in use is never removed.
    """
    site = site_packages(venv)
    bundled = {lib.name: lib for folder in BUNDLED_LIBS for lib in (site / folder).glob("*.so*")}
    names = [name.encode() for name in bundled]

    def named_by(path: Path) -> set[str]:
        data = path.read_bytes()
        return {name.decode() for name in names if name in data and name.decode() != path.name}

    roots = [p for p in site.rglob("*.so*") if p.is_file() and p.name not in bundled]
    used: set[str] = set().union(*(named_by(p) for p in roots)) if roots else set()
    todo = list(used)
    while todo:
        for name in named_by(bundled[todo.pop()]) - used:
            used.add(name)
            todo.append(name)
    return [lib for name, lib in sorted(bundled.items()) if name not in used]


def _remove(path: Path) -> int:
    if not path.exists() and not path.is_symlink():
        return 0  # inside something removed already
    size = _size(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
    return size


def slim(venv: Path, keep: Iterable[str], bytecode: bool = True) -> int:
    """Remove what :func:`removable` lists, then the bundled libraries left unused; return bytes freed."""
    freed = sum(_remove(path) for path in list(removable(venv, keep, bytecode)))
    return freed + sum(_remove(lib) for lib in unreferenced_libs(venv))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("venv", type=Path, help="the virtual environment, e.g. /opt/venv")
    parser.add_argument(
        "--keep",
        action="append",
        default=[],
        metavar="PACKAGE",
        help="a project package the image runs (edgeinspect_<service>); the others are removed",
    )
    parser.add_argument(
        "--keep-project",
        action="store_true",
        help="keep every project package (the cloud image's CLI runs them all)",
    )
    parser.add_argument("--keep-bytecode", action="store_true", help="leave the __pycache__ folders")
    args = parser.parse_args(argv)
    if not args.venv.is_dir():
        parser.error(f"{args.venv} is not a directory: pass the venv the image copies (e.g. /opt/venv)")
    keep = ["*"] if args.keep_project else args.keep
    freed = slim(args.venv, keep, bytecode=not args.keep_bytecode)
    print(json.dumps({"venv": str(args.venv), "freed_mb": round(freed / 1e6, 1), "kept": sorted(keep)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
