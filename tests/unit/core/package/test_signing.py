"""Ed25519 keys and signatures: key files, trusted-key loading, and refusals that say what to do."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from edgeinspect.core.errors import PackageError
from edgeinspect.core.package import (
    generate_keypair,
    key_id,
    load_private_key,
    load_public_keys,
    sign,
    verify,
    write_keypair,
)


def test_private_key_file_is_mode_0600_and_pair_signs_and_verifies(tmp_path: Path) -> None:
    private_path, public_path = write_keypair(tmp_path / "keys")
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600
    signature = sign(b"manifest", load_private_key(private_path))
    assert len(signature) == 64
    verify(b"manifest", signature, load_public_keys(public_path))


def test_write_keypair_refuses_to_overwrite_a_key(tmp_path: Path) -> None:
    write_keypair(tmp_path)
    with pytest.raises(PackageError, match="already exists"):
        write_keypair(tmp_path)


def test_generate_keypair_returns_pem(tmp_path: Path) -> None:
    private_pem, public_pem = generate_keypair()
    assert private_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public_pem.startswith(b"-----BEGIN PUBLIC KEY-----")


def test_signature_from_another_key_does_not_match(tmp_path: Path) -> None:
    private_a, _ = write_keypair(tmp_path, "a")
    _, public_b = write_keypair(tmp_path, "b")
    signature = sign(b"manifest", load_private_key(private_a))
    trusted = load_public_keys(public_b)
    with pytest.raises(PackageError, match=f"signature does not match any trusted key.*{key_id(trusted[0])}"):
        verify(b"manifest", signature, trusted)


def test_any_trusted_key_verifies_so_keys_can_rotate(tmp_path: Path) -> None:
    private_old, _ = write_keypair(tmp_path, "old")
    write_keypair(tmp_path, "new")
    (tmp_path / "README").write_text("not a key")
    trusted = load_public_keys(tmp_path)
    assert len(trusted) == 2
    verify(b"m", sign(b"m", load_private_key(private_old)), trusted)


def test_altered_bytes_fail_verification(tmp_path: Path) -> None:
    private_path, public_path = write_keypair(tmp_path)
    signature = sign(b'{"version": "7"}', load_private_key(private_path))
    with pytest.raises(PackageError, match="signature does not match"):
        verify(b'{"version": "8"}', signature, load_public_keys(public_path))


def test_wrong_length_signature_is_named(tmp_path: Path) -> None:
    _, public_path = write_keypair(tmp_path)
    with pytest.raises(PackageError, match=r"manifest\.sig is 3 bytes"):
        verify(b"m", b"abc", load_public_keys(public_path))


def test_no_trusted_keys_tells_the_operator_to_install_them(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="no trusted public keys") as caught:
        verify(b"m", b"\0" * 64, [])
    assert "EI_TRUSTED_KEYS_DIR" in caught.value.hint
    (tmp_path / "empty").mkdir()
    with pytest.raises(PackageError, match="no trusted public keys found") as caught:
        load_public_keys(tmp_path / "empty")
    assert "EI_TRUSTED_KEYS_DIR" in caught.value.hint
    with pytest.raises(PackageError, match="does not exist"):
        load_public_keys(tmp_path / "missing")
    with pytest.raises(PackageError, match="no trusted public keys found"):
        load_public_keys([])


def test_non_ed25519_or_garbage_key_files_are_refused_by_name(tmp_path: Path) -> None:
    ec_key = generate_private_key(SECP256R1())
    ec_pub = tmp_path / "ec.pub"
    ec_pub.write_bytes(
        ec_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    with pytest.raises(PackageError, match=r"ec\.pub holds a .*not an Ed25519 key"):
        load_public_keys(ec_pub)
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"hello")
    with pytest.raises(PackageError, match=r"garbage\.pem is not a PEM public key"):
        load_public_keys(garbage)
    with pytest.raises(PackageError, match="not an unencrypted PEM private key"):
        load_private_key(garbage)
    with pytest.raises(PackageError, match="cannot read key file"):
        load_private_key(tmp_path / "missing.key")
