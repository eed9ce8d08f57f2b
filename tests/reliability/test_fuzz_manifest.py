"""Property tests of ``manifest.json``, which is parsed from untrusted bytes (before trust, by tools)
and after the signature check (by the device): a ``Manifest`` or a ``PackageError``, nothing else."""

from __future__ import annotations

import json
from typing import Any

from edgeinspect.core.errors import PackageError
from edgeinspect.core.package import Manifest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers.manifests import manifest
from tests.reliability.hostile import BRACKET_BOMB, FUZZ
from tests.reliability.test_fuzz_json import JSON_VALUES

VALID: dict[str, Any] = json.loads(manifest(name="defect-cls", version="7").to_json_bytes())


def _parse(data: bytes) -> None:
    try:
        parsed = Manifest.from_json_bytes(data, source="manifest.json")
    except PackageError as exc:
        assert len(exc.message) < 20_000
        return
    assert isinstance(parsed, Manifest)


@FUZZ
@given(st.binary(max_size=400) | st.sampled_from([BRACKET_BOMB, b"{" * 70, b"\xef\xbb\xbf{}"]))
def test_any_bytes_are_a_manifest_or_a_package_error(data: bytes) -> None:
    _parse(data)


@FUZZ
@given(st.sampled_from(sorted(VALID)), JSON_VALUES, st.booleans())
def test_a_valid_manifest_with_one_field_replaced_or_removed(key: str, value: Any, remove: bool) -> None:
    doc = dict(VALID)
    if remove:
        del doc[key]
    else:
        doc[key] = value
    _parse(json.dumps(doc).encode())
