"""Disk and memory bounded by what a package sender controls, before its signature is ever checked.

Reproduces issue 15: a 1 MB tar.gz that expands to 1 GiB was written in full before being refused,
and an unsigned 512 MB manifest was read into memory before the signature check.
"""

from __future__ import annotations

import gzip
import tarfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from edgeinspect.core.errors import PackageError
from edgeinspect.core.package import (
    MANIFEST_FILE,
    SIGNATURE_FILE,
    UnpackLimits,
    load_private_key,
    load_public_keys,
    safe_extract,
    unpack_package,
    verify_package_dir,
    write_keypair,
)

GIB = 1 << 30
MIB = 1 << 20


def zeros_archive(path: Path, members: dict[str, int]) -> Path:
    """A tar.gz of members full of zeros, written as concatenated gzip members (which gzip readers
    join), so a 1 GiB member costs the test a megabyte and no compression time."""
    zero_mib = gzip.compress(b"\0" * MIB, compresslevel=9)
    with path.open("wb") as out:
        for name, size in members.items():
            info = tarfile.TarInfo(name)
            info.size = size
            out.write(gzip.compress(info.tobuf(format=tarfile.PAX_FORMAT)))
            whole, rest = divmod(size, MIB)
            for _ in range(whole):
                out.write(zero_mib)
            padding = (-size) % 512
            if rest or padding:
                out.write(gzip.compress(b"\0" * (rest + padding)))
        out.write(gzip.compress(b"\0" * 1024))
    return path


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Ed25519PrivateKey, list[Ed25519PublicKey]]:
    private_path, public_path = write_keypair(tmp_path / "keys")
    return load_private_key(private_path), load_public_keys(public_path)


def _nothing_left(parent: Path) -> None:
    assert not parent.exists() or list(parent.iterdir()) == []


def test_a_one_megabyte_archive_expanding_to_a_gibibyte_is_refused_before_it_is_written(
    tmp_path: Path,
) -> None:
    bomb = zeros_archive(tmp_path / "bomb.tar.gz", {"model.onnx": GIB})
    assert bomb.stat().st_size < 2 * MIB
    limits = UnpackLimits()

    with pytest.raises(PackageError, match=r"model\.onnx.*over the \d+-byte limit") as caught:
        safe_extract(
            bomb,
            tmp_path / "out" / "pkg",
            limits.max_member_bytes,
            limits.max_total_bytes,
            limits.max_members,
        )

    assert "100x the archive's size" in str(caught.value)
    _nothing_left(tmp_path / "out")


def test_members_that_add_up_past_the_ratio_are_stopped_and_cleaned_up(tmp_path: Path) -> None:
    bomb = zeros_archive(tmp_path / "bomb.tar.gz", {"a.bin": 40 * MIB, "b.bin": 40 * MIB})

    with pytest.raises(PackageError, match=r"b\.bin.*brings the total to"):
        safe_extract(bomb, tmp_path / "out" / "pkg", GIB, 8 * GIB, 16)

    _nothing_left(tmp_path / "out")


def test_unpack_package_refuses_the_bomb_too(
    tmp_path: Path, keys: tuple[Ed25519PrivateKey, list[Ed25519PublicKey]]
) -> None:
    bomb = zeros_archive(tmp_path / "bomb.tar.gz", {"model.onnx": GIB})
    with pytest.raises(PackageError, match="over the"):
        unpack_package(bomb, tmp_path / "out" / "pkg", keys[1])
    _nothing_left(tmp_path / "out")


def test_a_512_megabyte_manifest_member_is_refused_from_its_header(
    tmp_path: Path, keys: tuple[Ed25519PrivateKey, list[Ed25519PublicKey]]
) -> None:
    archive = zeros_archive(tmp_path / "big.tar.gz", {MANIFEST_FILE: 512 * MIB})
    with pytest.raises(PackageError, match=r"manifest\.json.*over the 1048576-byte limit"):
        unpack_package(archive, tmp_path / "out" / "pkg", keys[1])
    _nothing_left(tmp_path / "out")


def test_an_unsigned_512_megabyte_manifest_is_not_read(
    tmp_path: Path, keys: tuple[Ed25519PrivateKey, list[Ed25519PublicKey]]
) -> None:
    folder = tmp_path / "pkg"
    folder.mkdir()
    with (folder / MANIFEST_FILE).open("wb") as handle:
        handle.truncate(512 * MIB)  # sparse: costs no disk
    (folder / SIGNATURE_FILE).write_bytes(b"\0" * 64)

    with pytest.raises(PackageError, match=r"manifest manifest\.json is 536870912 bytes, over the limit"):
        verify_package_dir(folder, keys[1])
