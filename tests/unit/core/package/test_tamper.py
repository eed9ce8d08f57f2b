"""A signed package, verified, then tampered with in every way the issue lists: each one is refused.

Each case rewrites the good package, unpacks it with the trusted keys, and expects a ``PackageError``
whose message names the problem, with nothing left at the destination (the running model stays).
"""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from edgeinspect.core.errors import PackageError
from edgeinspect.core.package import (
    UnpackLimits,
    load_private_key,
    load_public_keys,
    sign,
    unpack_package,
    verify_package_dir,
    write_keypair,
)

from tests.unit.core.package.helpers import add_bytes, add_special, read_members, write_members

Keys = tuple[Ed25519PrivateKey, list[Ed25519PublicKey]]


def _refused(tmp_path: Path, package: Path, keys: Keys, problem: str) -> PackageError:
    dest = tmp_path / "models" / "defect-cls-7"
    with pytest.raises(PackageError, match=problem) as caught:
        unpack_package(package, dest, keys[1])
    assert not dest.exists()
    assert os.listdir(dest.parent) == [], "no staging folder may be left"
    return caught.value


def _rewrite(package: Path, *extra: tuple[str, bytes, str]) -> Path:
    """Copy every member, then append extra (name, type, linkname) header-only or data members."""
    members = read_members(package)
    with tarfile.open(package, "w:gz") as archive:
        for name, data in members.items():
            add_bytes(archive, name, data)
        for name, kind, target in extra:
            add_special(archive, name, kind, target)
    return package


def test_good_package_verifies(tmp_path: Path, package: Path, keys: Keys) -> None:
    dest, manifest = unpack_package(package, tmp_path / "ok", keys[1])
    assert verify_package_dir(dest, keys[1]).version == manifest.version == "7"


def test_one_byte_of_the_model_changed_is_refused_naming_file_and_hashes(
    tmp_path: Path, package: Path, keys: Keys
) -> None:
    members = read_members(package)
    model = bytearray(members["model.onnx"])
    model[len(model) // 2] ^= 0x01
    members["model.onnx"] = bytes(model)
    error = _refused(
        tmp_path, write_members(package, members), keys, r"file model\.onnx has sha256 [0-9a-f]{64}"
    )
    expected = json.loads(members["manifest.json"])["files"]["model.onnx"]
    assert f"signed manifest says {expected}" in error.message


def test_one_manifest_field_changed_fails_the_signature(tmp_path: Path, package: Path, keys: Keys) -> None:
    members = read_members(package)
    manifest = json.loads(members["manifest.json"])
    manifest["thresholds"]["image"] = 0.99
    members["manifest.json"] = json.dumps(manifest, sort_keys=True, indent=2).encode() + b"\n"
    _refused(tmp_path, write_members(package, members), keys, "signature does not match any trusted key")


def test_dotdot_member_is_refused(tmp_path: Path, package: Path, keys: Keys) -> None:
    members = read_members(package) | {"golden/../../../evil.sh": b"#!/bin/sh"}
    _refused(
        tmp_path, write_members(package, members), keys, r"'golden/\.\./\.\./\.\./evil\.sh' has a '\.\.' path"
    )


def test_absolute_path_member_is_refused(tmp_path: Path, package: Path, keys: Keys) -> None:
    members = read_members(package) | {"/tmp/evil.sh": b"#!/bin/sh"}
    _refused(tmp_path, write_members(package, members), keys, "'/tmp/evil.sh' has an absolute path")


def test_symlink_member_is_refused(tmp_path: Path, package: Path, keys: Keys) -> None:
    _rewrite(package, ("golden/link", tarfile.SYMTYPE, "/etc/shadow"))
    _refused(tmp_path, package, keys, "'golden/link' is a link")


def test_oversized_member_is_refused(tmp_path: Path, package: Path, keys: Keys) -> None:
    members = read_members(package) | {"model.onnx": bytes(2 << 20)}
    limits = UnpackLimits(max_member_bytes=1 << 20)
    dest = tmp_path / "models" / "big"
    with pytest.raises(PackageError, match=r"'model\.onnx' is 2097152 bytes, over the 1048576-byte limit"):
        unpack_package(write_members(package, members), dest, keys[1], limits)
    assert not dest.exists()


def test_unsigned_package_is_refused(tmp_path: Path, package: Path, keys: Keys) -> None:
    members = read_members(package)
    del members["manifest.sig"]
    _refused(
        tmp_path,
        write_members(package, members),
        keys,
        r"package defect-cls-7\.tar\.gz is unsigned: manifest\.sig is missing",
    )


def test_package_signed_by_an_untrusted_key_is_refused(tmp_path: Path, package: Path, keys: Keys) -> None:
    private_path, _ = write_keypair(tmp_path / "rogue")
    members = read_members(package)
    members["manifest.sig"] = sign(members["manifest.json"], load_private_key(private_path))
    _refused(tmp_path, write_members(package, members), keys, "signature does not match any trusted key")


def test_truncated_tar_gz_is_refused(tmp_path: Path, package: Path, keys: Keys) -> None:
    data = package.read_bytes()
    package.write_bytes(data[: len(data) - 200])
    _refused(tmp_path, package, keys, "truncated or not a gzip-compressed tar")


def test_unlisted_extra_file_is_refused(tmp_path: Path, package: Path, keys: Keys) -> None:
    members = read_members(package) | {"golden/extra.npy": b"surprise"}
    _refused(
        tmp_path,
        write_members(package, members),
        keys,
        r"files the manifest does not list: \['golden/extra\.npy'\]",
    )


def test_listed_file_missing_is_refused(tmp_path: Path, package: Path, keys: Keys) -> None:
    members = read_members(package)
    del members["golden/output-0.npy"]
    _refused(
        tmp_path,
        write_members(package, members),
        keys,
        r"file golden/output-0\.npy listed in the manifest is missing",
    )


def test_no_trusted_keys_refuses_before_unpacking(tmp_path: Path, package: Path) -> None:
    with pytest.raises(PackageError, match="no trusted public keys") as caught:
        unpack_package(package, tmp_path / "dest", [])
    assert "EI_TRUSTED_KEYS_DIR" in caught.value.hint
    assert not (tmp_path / "dest").exists()


def test_key_rotation_accepts_either_trusted_key(tmp_path: Path, package: Path, keys: Keys) -> None:
    _, other_public = write_keypair(tmp_path / "other")
    trusted = load_public_keys(other_public) + keys[1]
    _, manifest = unpack_package(package, tmp_path / "dest", trusted)
    assert manifest.name == "defect-cls"


def test_unpacked_folder_altered_on_disk_is_refused_on_reverify(
    tmp_path: Path, package: Path, keys: Keys
) -> None:
    dest, _ = unpack_package(package, tmp_path / "ok", keys[1])
    (dest / "golden" / "sneaky").symlink_to("/etc/passwd")
    with pytest.raises(PackageError, match=r"holds golden/sneaky, which is a link"):
        verify_package_dir(dest, keys[1])
    (dest / "golden" / "sneaky").unlink()
    with (dest / "model.onnx").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(PackageError, match=r"file model\.onnx has sha256"):
        verify_package_dir(dest, keys[1])
