"""Ed25519 signing of manifest bytes: the cloud signs with a private key, devices hold public keys.

The signature covers the exact ``manifest.json`` bytes; the manifest lists the sha256 of every other
file, so one 64-byte signature vouches for the whole package. Keys are PEM files (PKCS#8 private,
SubjectPublicKeyInfo public) so standard tools (``openssl pkey``) can inspect them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edgeinspect.core.errors import PackageError

SIGNATURE_BYTES = 64
PUBLIC_KEY_SUFFIXES = (".pub", ".pem")
"""Files a trusted-keys folder is scanned for; anything else there (a README) is ignored."""

INSTALL_KEYS_HINT = (
    "install the trusted public key(s) (*.pub PEM files from `generate_keypair`) on the device and point "
    "EI_TRUSTED_KEYS_DIR at their folder"
)


def generate_keypair() -> tuple[bytes, bytes]:
    """Return a fresh ``(private_pem, public_pem)`` pair; the private PEM is unencrypted PKCS#8."""
    private_key = Ed25519PrivateKey.generate()
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


def write_keypair(directory: str | Path, name: str = "edgeinspect") -> tuple[Path, Path]:
    """Write a new pair as ``{name}.key`` (mode 0600) and ``{name}.pub`` in ``directory``.

    Refuses to overwrite an existing key: silently replacing a signing key would orphan every device
    that trusts the old one.
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    private_path, public_path = folder / f"{name}.key", folder / f"{name}.pub"
    for path in (private_path, public_path):
        if path.exists():
            raise PackageError(f"key file {path} already exists", hint="choose another folder or name")
    private_pem, public_pem = generate_keypair()
    _write_new_file(private_path, private_pem, 0o600)
    _write_new_file(public_path, public_pem, 0o644)
    return private_path, public_path


def _write_new_file(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` exclusively with ``mode`` from the start, so a secret is never world-readable."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    """Load an unencrypted PEM Ed25519 private key, raising ``PackageError`` that names the file."""
    data = _read_key_file(Path(path))
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise PackageError(
            f"{path} is not an unencrypted PEM private key: {exc}", hint="use a key from write_keypair"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise PackageError(
            f"{path} holds a {type(key).__name__}, not an Ed25519 key", hint="use write_keypair"
        )
    return key


def load_public_keys(paths_or_dir: str | Path | Iterable[str | Path]) -> list[Ed25519PublicKey]:
    """Load trusted public keys from PEM files, or from every ``*.pub``/``*.pem`` file in a folder.

    Raises ``PackageError`` when a path is missing, a file is not an Ed25519 public key, or no key is
    found at all: a device with no trusted key must refuse every package, loudly, not accept them.
    """
    sources = [paths_or_dir] if isinstance(paths_or_dir, str | Path) else list(paths_or_dir)
    files: list[Path] = []
    for source in map(Path, sources):
        if source.is_dir():
            files.extend(
                sorted(p for p in source.iterdir() if p.suffix in PUBLIC_KEY_SUFFIXES and p.is_file())
            )
        elif source.is_file():
            files.append(source)
        else:
            raise PackageError(f"trusted key path {source} does not exist", hint=INSTALL_KEYS_HINT)
    keys = [_load_public_key(path) for path in files]
    if not keys:
        where = ", ".join(str(s) for s in sources) or "<no paths given>"
        raise PackageError(f"no trusted public keys found in {where}", hint=INSTALL_KEYS_HINT)
    return keys


def _load_public_key(path: Path) -> Ed25519PublicKey:
    data = _read_key_file(path)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise PackageError(f"{path} is not a PEM public key: {exc}", hint=INSTALL_KEYS_HINT) from exc
    if not isinstance(key, Ed25519PublicKey):
        raise PackageError(f"{path} holds a {type(key).__name__}, not an Ed25519 key", hint=INSTALL_KEYS_HINT)
    return key


def _read_key_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PackageError(
            f"cannot read key file {path}: {exc.strerror or exc}", hint=INSTALL_KEYS_HINT
        ) from exc


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short, stable fingerprint (first 16 hex of the raw key's sha256) to name a key in messages."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def require_trusted_keys(public_keys: Sequence[Ed25519PublicKey]) -> None:
    """Raise ``PackageError`` telling the operator to install keys when none are configured."""
    if not public_keys:
        raise PackageError(
            "no trusted public keys are configured, so no package can be verified", hint=INSTALL_KEYS_HINT
        )


def sign(manifest_bytes: bytes, private_key: Ed25519PrivateKey) -> bytes:
    """Return the 64-byte Ed25519 signature of ``manifest_bytes`` (stored as ``manifest.sig``)."""
    return private_key.sign(manifest_bytes)


def verify(manifest_bytes: bytes, signature: bytes, public_keys: Sequence[Ed25519PublicKey]) -> None:
    """Return if any trusted key verifies ``signature``; otherwise raise ``PackageError``.

    Every trusted key is tried so that keys can be rotated: a device trusting old and new keys
    accepts packages signed by either.
    """
    require_trusted_keys(public_keys)
    if len(signature) != SIGNATURE_BYTES:
        raise PackageError(
            f"manifest.sig is {len(signature)} bytes, expected a {SIGNATURE_BYTES}-byte Ed25519 signature",
            hint="the package is corrupt or was not signed by edgeinspect; rebuild and re-sign it",
        )
    for key in public_keys:
        try:
            key.verify(signature, manifest_bytes)
        except InvalidSignature:
            continue
        return
    tried = ", ".join(key_id(key) for key in public_keys)
    raise PackageError(
        f"signature does not match any trusted key (tried {len(public_keys)}: {tried}); "
        "the manifest was altered or signed by an untrusted key",
        hint="rebuild the package signed with a trusted key, or install its public key on the device",
    )
