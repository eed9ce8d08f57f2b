"""Write a signed model package: ``{name}-{version}.tar.gz`` with manifest, model(s), golden data, signature.

The builder is the only writer of the format, so it fills in what must not be typed by hand (the
sha256 of every file, the golden file names), checks the golden input against the declared input,
and produces byte-identical archives for identical inputs (fixed member order, times and owners) so
that a rebuilt package can be compared with the one in the registry.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgeinspect.core.errors import PackageError
from edgeinspect.core.hashing import sha256_bytes, sha256_file
from edgeinspect.core.observability import get_logger
from edgeinspect.core.package.manifest import (
    GOLDEN_INPUT_FILE,
    INT8_MODEL_FILE,
    MANIFEST_FILE,
    MODEL_FILE,
    SIGNATURE_FILE,
    Golden,
    InputSpec,
    Manifest,
)
from edgeinspect.core.package.signing import sign
from edgeinspect.core.package.tarsafe import fsync_dir

log = get_logger(__name__)


@dataclass(frozen=True)
class _Entry:
    """One archive member: its name and either a file on disk or bytes in memory."""

    name: str
    path: Path | None = None
    data: bytes | None = None

    def sha256(self) -> str:
        return sha256_file(self.path) if self.path is not None else sha256_bytes(self.data or b"")


def build_package(
    out_dir: str | Path,
    manifest: Manifest,
    model_path: str | Path,
    golden_input: np.ndarray,
    golden_outputs: Mapping[str, np.ndarray],
    private_key: Ed25519PrivateKey,
    int8_model_path: str | Path | None = None,
) -> Path:
    """Build, sign and write the package into ``out_dir``; return the path of the ``.tar.gz``.

    ``manifest.files`` and ``manifest.golden`` are (re)computed here; everything else is taken as
    given. ``golden_outputs`` maps model output names to expected arrays (at least one). An existing
    package of the same name is replaced atomically (the file is written under a temporary name and
    renamed), so a reader never sees a partial archive.
    """
    _check_golden(manifest, golden_input, golden_outputs)
    entries = _payload_entries(manifest, model_path, golden_input, golden_outputs, int8_model_path)
    golden = Golden(outputs={name: _golden_output_name(manifest, name) for name in golden_outputs})
    files = {entry.name: entry.sha256() for entry in entries}
    final = _complete_manifest(manifest, files, golden)
    manifest_bytes = final.to_json_bytes()
    signed = [
        _Entry(MANIFEST_FILE, data=manifest_bytes),
        _Entry(SIGNATURE_FILE, data=sign(manifest_bytes, private_key)),
        *entries,
    ]
    path = _write_archive(Path(out_dir), final, signed)
    log.info("package_built", path=str(path), model=final.name, version=final.version, files=len(final.files))
    return path


def _payload_entries(
    manifest: Manifest,
    model_path: str | Path,
    golden_input: np.ndarray,
    golden_outputs: Mapping[str, np.ndarray],
    int8_model_path: str | Path | None,
) -> list[_Entry]:
    """Everything the manifest hashes, in archive order."""
    entries = [_Entry(MODEL_FILE, path=_existing_file(model_path, "model"))]
    if int8_model_path is not None:
        entries.append(_Entry(INT8_MODEL_FILE, path=_existing_file(int8_model_path, "int8 model")))
    entries.append(_Entry(GOLDEN_INPUT_FILE, data=_npy_bytes(golden_input)))
    for name in sorted(golden_outputs, key=lambda n: _golden_output_name(manifest, n)):
        entries.append(_Entry(_golden_output_name(manifest, name), data=_npy_bytes(golden_outputs[name])))
    return entries


def _golden_output_name(manifest: Manifest, output_name: str) -> str:
    """Golden outputs are named by their index in ``manifest.outputs``: tensor names may hold '/' or ':'."""
    index = [spec.name for spec in manifest.outputs].index(output_name)
    return f"golden/output-{index}.npy"


def _existing_file(path: str | Path, what: str) -> Path:
    file_path = Path(path)
    if not file_path.is_file():
        raise PackageError(f"{what} file {file_path} does not exist", hint="export the ONNX model first")
    return file_path


def _npy_bytes(array: np.ndarray) -> bytes:
    """Serialise as ``.npy`` without pickle, so the device can load it with ``allow_pickle=False``."""
    if array.dtype.hasobject:
        raise PackageError(
            "golden arrays must hold numbers, not Python objects", hint="convert with np.asarray"
        )
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _check_golden(
    manifest: Manifest, golden_input: np.ndarray, golden_outputs: Mapping[str, np.ndarray]
) -> None:
    """Catch a golden set that cannot match the model at build time, not on the device."""
    if not golden_outputs:
        raise PackageError(
            "golden_outputs is empty", hint="give the expected output of at least one model output"
        )
    names = [spec.name for spec in manifest.outputs]
    unknown = sorted(set(golden_outputs) - set(names))
    if unknown:
        raise PackageError(
            f"golden outputs {unknown} are not model outputs {names}", hint="use the manifest's names"
        )
    _check_input(manifest.input, golden_input)


def _check_input(spec: InputSpec, array: np.ndarray) -> None:
    if array.dtype != np.dtype(spec.dtype):
        raise PackageError(
            f"golden input has dtype {array.dtype}, but the manifest input {spec.name!r} is {spec.dtype}",
            hint="save the golden input exactly as the model receives it",
        )
    shape_ok = array.ndim == len(spec.shape) and all(
        d in (-1, a) for d, a in zip(spec.shape, array.shape, strict=True)
    )
    if not shape_ok:
        raise PackageError(
            f"golden input has shape {list(array.shape)}, but the manifest input expects {spec.shape}",
            hint="save the golden input exactly as the model receives it (NCHW)",
        )


def _complete_manifest(manifest: Manifest, files: dict[str, str], golden: Golden) -> Manifest:
    """Return a re-validated copy with computed ``files`` and ``golden`` (``model_copy`` skips validation)."""
    data = manifest.model_dump(mode="json") | {"files": files, "golden": golden.model_dump(mode="json")}
    encoded = json.dumps(data).encode("utf-8")
    # its own output: no size cap here (a device still refuses a manifest over MAX_MANIFEST_BYTES)
    return Manifest.from_json_bytes(encoded, source="the built manifest", max_bytes=len(encoded))


def _write_archive(out_dir: Path, manifest: Manifest, entries: list[_Entry]) -> Path:
    """Write a reproducible tar.gz under a temporary name, fsync it, then rename it into place."""
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / manifest.package_filename
    mtime = int(manifest.created_at.timestamp())
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=out_dir)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as raw:
            with (
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=mtime) as gz,
                tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as archive,
            ):
                for entry in entries:
                    _add(archive, entry, mtime)
            raw.flush()
            os.fsync(raw.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(out_dir)
    return final


def _add(archive: tarfile.TarFile, entry: _Entry, mtime: int) -> None:
    info = tarfile.TarInfo(entry.name)
    info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = mtime, 0o644, 0, 0, "", ""
    if entry.path is not None:
        info.size = entry.path.stat().st_size
        with open(entry.path, "rb") as handle:
            archive.addfile(info, handle)
        return
    data = entry.data or b""
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))
