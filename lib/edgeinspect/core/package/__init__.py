"""The signed model package: ``{name}-{version}.tar.gz`` = manifest + ONNX model(s) + golden data + signature.

Cloud side: :func:`build_package` with a key from :func:`load_private_key`. Device side:
:func:`unpack_package` with keys from :func:`load_public_keys`, then :func:`load_golden` for the
smoke test. Every failure is a :class:`~edgeinspect.core.errors.PackageError` that names the problem.
"""

from edgeinspect.core.package.builder import build_package
from edgeinspect.core.package.golden import (
    INT8_SMOKE_ATOL,
    SMOKE_ATOL,
    SMOKE_RTOL,
    compare_outputs,
    image_scores,
    max_abs_diff,
)
from edgeinspect.core.package.manifest import (
    GOLDEN_INPUT_FILE,
    INT8_MODEL_FILE,
    MANIFEST_FILE,
    MODEL_FILE,
    NAME_PATTERN,
    SCHEMA_VERSION,
    SIGNATURE_FILE,
    TWO_OUTPUT_TASKS,
    Framework,
    Golden,
    InputSpec,
    Int8Gate,
    Manifest,
    Normalisation,
    OperatingPoint,
    OutputSpec,
    Precision,
    Resize,
    Thresholds,
    TilingHint,
    utc_now,
)
from edgeinspect.core.package.reader import load_golden, read_manifest, unpack_package, verify_package_dir
from edgeinspect.core.package.signing import (
    generate_keypair,
    key_id,
    load_private_key,
    load_public_keys,
    require_trusted_keys,
    sign,
    verify,
    write_keypair,
)
from edgeinspect.core.package.tarsafe import UnpackLimits, safe_extract
from edgeinspect.core.package.version import VERSION_PATTERN, Version, parse_version

__all__ = [
    "GOLDEN_INPUT_FILE",
    "INT8_MODEL_FILE",
    "INT8_SMOKE_ATOL",
    "MANIFEST_FILE",
    "MODEL_FILE",
    "NAME_PATTERN",
    "SCHEMA_VERSION",
    "SIGNATURE_FILE",
    "SMOKE_ATOL",
    "SMOKE_RTOL",
    "TWO_OUTPUT_TASKS",
    "VERSION_PATTERN",
    "Framework",
    "Golden",
    "InputSpec",
    "Int8Gate",
    "Manifest",
    "Normalisation",
    "OperatingPoint",
    "OutputSpec",
    "Precision",
    "Resize",
    "Thresholds",
    "TilingHint",
    "UnpackLimits",
    "Version",
    "build_package",
    "compare_outputs",
    "generate_keypair",
    "image_scores",
    "key_id",
    "load_golden",
    "load_private_key",
    "load_public_keys",
    "max_abs_diff",
    "parse_version",
    "read_manifest",
    "require_trusted_keys",
    "safe_extract",
    "sign",
    "unpack_package",
    "utc_now",
    "verify",
    "verify_package_dir",
    "write_keypair",
]
