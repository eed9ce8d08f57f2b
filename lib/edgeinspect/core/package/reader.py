"""Open, verify and unpack model packages on the device.

Order matters: the signature is checked over the exact ``manifest.json`` bytes before anything in
the manifest is believed; then every file is hashed against the manifest; then nothing else may be
present. Only a folder that passed all three ever appears under its final name, so the model
manager can load from it without re-checking and a refused package leaves the running model alone.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edgeinspect.core.errors import PackageError
from edgeinspect.core.hashing import sha256_file
from edgeinspect.core.observability import get_logger
from edgeinspect.core.package.manifest import (
    MANIFEST_FILE,
    MAX_MANIFEST_BYTES,
    MAX_SIGNATURE_BYTES,
    MODEL_FILE,
    SIGNATURE_FILE,
    Manifest,
)
from edgeinspect.core.package.signing import require_trusted_keys, verify
from edgeinspect.core.package.tarsafe import UnpackLimits, fsync_dir, safe_extract

log = get_logger(__name__)
_PACKAGE_NAME_CAPS = ((MANIFEST_FILE, MAX_MANIFEST_BYTES), (SIGNATURE_FILE, MAX_SIGNATURE_BYTES))
_REBUILD = "the package was altered or damaged after signing; download it again or rebuild it"


def read_manifest(package_dir: str | Path) -> Manifest:
    """Parse ``manifest.json`` of an unpacked package WITHOUT checking its signature.

    For display and tooling only; anything that acts on a package must use
    :func:`verify_package_dir` (or :func:`unpack_package`), which returns the same model once trusted.
    """
    path = Path(package_dir) / MANIFEST_FILE
    return Manifest.from_json_bytes(_read_required(path, "manifest", MAX_MANIFEST_BYTES), source=str(path))


def verify_package_dir(
    package_dir: str | Path, public_keys: Sequence[Ed25519PublicKey], *, label: str | None = None
) -> Manifest:
    """Check the signature, every file's sha256 and the absence of unlisted files; return the manifest.

    Raises ``PackageError`` naming the problem: no trusted keys, unsigned, bad signature, a missing,
    extra or altered file (with expected and actual sha256). ``label`` names the package in messages
    (default: the folder's name).
    """
    folder = Path(package_dir)
    label = label or folder.name
    require_trusted_keys(public_keys)
    manifest_bytes = _read_required(folder / MANIFEST_FILE, "manifest", MAX_MANIFEST_BYTES)
    signature_path = folder / SIGNATURE_FILE
    if not signature_path.is_file():
        raise PackageError(
            f"package {label} is unsigned: {SIGNATURE_FILE} is missing",
            hint="only signed packages are accepted; build it with a signing key",
        )
    verify(manifest_bytes, _read_required(signature_path, "signature", MAX_SIGNATURE_BYTES), public_keys)
    manifest = Manifest.from_json_bytes(manifest_bytes, source=f"{label}/{MANIFEST_FILE}")
    _check_complete(manifest)
    _check_files(folder, manifest, label)
    return manifest


def _read_required(path: Path, what: str, max_bytes: int | None = None) -> bytes:
    """The file's bytes; with ``max_bytes``, refused from its size before one byte is read (and never
    more than ``max_bytes + 1`` read, should it grow meanwhile): the manifest is untrusted until its
    signature is checked, and an unsigned 512 MB one must not be loaded into memory to find that out."""
    try:
        if max_bytes is None:
            return path.read_bytes()
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            data = handle.read(max_bytes + 1) if size <= max_bytes else b""
        if size > max_bytes or len(data) > max_bytes:
            raise PackageError(
                f"{what} {path.name} is {max(size, len(data))} bytes, over the limit of {max_bytes}",
                hint="this is not a package built by edgeinspect; rebuild it",
            )
        return data
    except FileNotFoundError as exc:
        raise PackageError(
            f"{what} {path} is missing", hint="this is not an edgeinspect model package"
        ) from exc
    except OSError as exc:
        raise PackageError(
            f"cannot read {what} {path}: {exc.strerror or exc}", hint="check the folder"
        ) from exc


def _check_complete(manifest: Manifest) -> None:
    """A signed manifest can still describe an incomplete package (a hand-made one); refuse it here."""
    if MODEL_FILE not in manifest.files:
        raise PackageError(
            f"manifest does not list {MODEL_FILE}", hint="build the package with build_package"
        )
    if manifest.golden is None:
        raise PackageError(
            "manifest has no golden data for the smoke test", hint="build the package with build_package"
        )
    for path in [manifest.golden.input, *manifest.golden.outputs.values()]:
        if path not in manifest.files:
            raise PackageError(f"golden file {path} is not listed in the manifest files", hint=_REBUILD)


def _check_files(folder: Path, manifest: Manifest, label: str) -> None:
    """Every listed file present with its hash; nothing else present (no links, no extras)."""
    present = _walk_files(folder, label)
    extra = sorted(present - set(manifest.files) - {MANIFEST_FILE, SIGNATURE_FILE})
    if extra:
        raise PackageError(f"package {label} holds files the manifest does not list: {extra}", hint=_REBUILD)
    for name, expected in sorted(manifest.files.items()):
        if name not in present:
            raise PackageError(
                f"file {name} listed in the manifest is missing from package {label}", hint=_REBUILD
            )
        actual = sha256_file(folder / name)
        if actual != expected:
            raise PackageError(
                f"file {name} has sha256 {actual}, but the signed manifest says {expected}", hint=_REBUILD
            )


def _walk_files(folder: Path, label: str) -> set[str]:
    """Relative POSIX paths of all regular files; a link or special file anywhere is an error."""
    found: set[str] = set()
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            raise PackageError(
                f"package {label} holds {name}, which is a link or special file", hint=_REBUILD
            )
        if path.is_file():
            found.add(name)
    return found


def unpack_package(
    tar_path: str | Path,
    dest_dir: str | Path,
    public_keys: Sequence[Ed25519PublicKey],
    limits: UnpackLimits | None = None,
) -> tuple[Path, Manifest]:
    """Safely extract and fully verify a package; it appears at ``dest_dir`` only if it passed.

    ``dest_dir`` must not exist. Extraction and verification happen in a temporary folder beside it,
    renamed into place at the end; on any failure that folder is removed and ``dest_dir`` stays absent.
    """
    require_trusted_keys(public_keys)
    caps = limits or UnpackLimits()
    dest = Path(dest_dir)
    if dest.exists() or dest.is_symlink():
        raise PackageError(f"cannot unpack into {dest}: it already exists", hint="unpack into a fresh folder")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.verifying-", dir=dest.parent))
    try:
        unpacked = safe_extract(
            tar_path,
            staging / "package",
            caps.max_member_bytes,
            caps.max_total_bytes,
            caps.max_members,
            max_ratio=caps.max_ratio,
            ratio_floor_bytes=caps.ratio_floor_bytes,
            name_caps=caps.name_caps or _PACKAGE_NAME_CAPS,
        )
        manifest = verify_package_dir(unpacked, public_keys, label=Path(tar_path).name)
        unpacked.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    fsync_dir(dest.parent)
    log.info("package_unpacked", path=str(dest), model=manifest.name, version=manifest.version)
    return dest, manifest


def load_golden(package_dir: str | Path, manifest: Manifest) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Load the smoke-test input and expected outputs (keyed by model output name) of a verified package."""
    if manifest.golden is None:
        raise PackageError(
            "manifest has no golden data for the smoke test", hint="build the package with build_package"
        )
    folder = Path(package_dir)
    golden_input = _load_npy(folder, manifest.golden.input)
    outputs = {name: _load_npy(folder, path) for name, path in manifest.golden.outputs.items()}
    return golden_input, outputs


def _load_npy(folder: Path, name: str) -> np.ndarray:
    data = _read_required(folder / name, "golden file")
    try:
        array: np.ndarray = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise PackageError(f"golden file {name} is not a valid .npy array: {exc}", hint=_REBUILD) from exc
    return array
