"""Test helpers: a tiny ONNX model and tools to read and rewrite tar.gz archives member by member."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path


def tiny_onnx_bytes() -> bytes:
    """An Identity graph (uint8 NCHW in, same out); plain bytes if the optional ``onnx`` is absent."""
    try:
        from onnx import TensorProto, helper
    except ImportError:
        return b"not-a-real-onnx-model"
    image = helper.make_tensor_value_info("image", TensorProto.UINT8, [1, 3, 8, 8])
    out = helper.make_tensor_value_info("score", TensorProto.UINT8, [1, 3, 8, 8])
    graph = helper.make_graph([helper.make_node("Identity", ["image"], ["score"])], "tiny", [image], [out])
    return bytes(helper.make_model(graph).SerializeToString())


def read_members(tar_path: Path) -> dict[str, bytes]:
    """All regular members of a tar.gz, in archive order."""
    members: dict[str, bytes] = {}
    with tarfile.open(tar_path, "r:gz") as archive:
        for info in archive:
            handle = archive.extractfile(info)
            assert handle is not None
            members[info.name] = handle.read()
    return members


def write_members(tar_path: Path, members: dict[str, bytes]) -> Path:
    """Write regular-file members into a new tar.gz (overwriting ``tar_path``)."""
    with tarfile.open(tar_path, "w:gz") as archive:
        for name, data in members.items():
            add_bytes(archive, name, data)
    return tar_path


def add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    """Add a regular file member with exactly ``name`` (tarfile does not strip '/' or '..' here)."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def add_special(archive: tarfile.TarFile, name: str, kind: bytes, linkname: str = "") -> None:
    """Add a header-only member of ``kind`` (tarfile.SYMTYPE, LNKTYPE, CHRTYPE, FIFOTYPE, DIRTYPE)."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    archive.addfile(info)
