"""Turn a package (unpacked folder or ``.tar.gz``) into a verified, warmed-up :class:`LoadedModel`.

The agent re-verifies every package on load (signature over the manifest, then every file's sha256)
even when the model manager already did: the folder could have changed since, and the agent is the
last line before a model decides about real parts.

Which model file: a ``LoadVersion`` that names a variant gets exactly that one (or an error). One that
names none follows ``EI_PRECISION``: ``fp32`` or ``int8`` force that file; ``auto`` (the default)
takes the package's default precision (``manifest.precision``: int8 when it passed compile's gates,
fp32 for packages that predate the field). An auto int8 must also answer the golden input within the
int8 tolerance on this box; when its session cannot be created (some execution providers lack int8
kernels) or it answers wrongly, the agent loads ``model.onnx`` instead and reports why
(``ModelVersionInfo.variant_fallback``, ``ei_agent_model_variant{requested="int8"}``, an
``int8_fallback`` log line). Only a package that passed verification gets here: a tampered int8 file is
refused by its hash, never "fallen back" from.
"""

from __future__ import annotations

import contextlib
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from edgeinspect.core.errors import PackageError
from edgeinspect.core.observability import get_logger
from edgeinspect.core.package import (
    INT8_MODEL_FILE,
    INT8_SMOKE_ATOL,
    MANIFEST_FILE,
    MODEL_FILE,
    Manifest,
    compare_outputs,
    load_golden,
    load_public_keys,
    unpack_package,
    verify_package_dir,
)

from edgeinspect_inference.agent.errors import (
    InferenceError,
    InvalidInputError,
    ModelLoadError,
    NotFoundPathError,
    clip,
)
from edgeinspect_inference.agent.providers import ExecutionProvider
from edgeinspect_inference.agent.session import ModelSession, rss_bytes
from edgeinspect_inference.agent.stats import AgentMetrics, VersionStats
from edgeinspect_inference.agent.tuning import (
    Golden,
    ProviderChoice,
    SessionRequest,
    TuningOptions,
    open_session,
)

log = get_logger(__name__)
PACKAGE_SUFFIXES = (".tar.gz", ".tgz")
VARIANT_FILES = {"fp32": MODEL_FILE, "int8": INT8_MODEL_FILE}


@dataclass(frozen=True)
class LoadOptions:
    """How every model is loaded: providers, threads, warm-up, where packages unpack, which keys to trust."""

    providers: tuple[ExecutionProvider, ...]
    model_dir: Path
    trusted_keys_dir: Path
    intra_op_threads: int = 0
    allow_spinning: bool = True
    warmup_runs: int = 2
    max_batch: int = 64
    max_manifest_bytes: int = 1024 * 1024
    tuning: TuningOptions = field(default_factory=lambda: TuningOptions(enabled=False))
    precision: str = "auto"
    """``EI_PRECISION``: ``auto`` (the package's default, fp32 fallback), ``int8`` or ``fp32`` (forced)."""
    int8_golden_atol: float = INT8_SMOKE_ATOL


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """One loaded version: immutable once published, so readers may hold it without a lock."""

    name: str
    version: str
    manifest: Manifest
    manifest_json: str
    session: ModelSession
    path: Path
    url: str
    sha256: str
    variant: str
    load_ms: float
    memory_bytes: int
    loaded_at_ns: int
    stats: VersionStats
    owned_dir: Path | None = field(default=None)
    tuning: ProviderChoice | None = field(default=None)
    variant_fallback: str = ""
    """Why this version runs fp32 although its package's default is int8 (empty: no fallback)."""

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def task(self) -> str:
        return self.manifest.task


@dataclass(frozen=True)
class VerifiedPackage:
    """A package folder that passed verification; ``owned`` is set when the agent unpacked it itself."""

    path: Path
    manifest: Manifest
    url: str
    owned: Path | None


def _local_path(url: str) -> Path:
    path = Path(url.removeprefix("file://"))
    if not path.exists():
        raise NotFoundPathError(
            f"package {clip(url)!r} does not exist on this device",
            hint="give the folder the model manager unpacked, or a .tar.gz package file",
        )
    return path


class PackageLoader:
    """Verifies packages and builds sessions; stateless apart from its options."""

    def __init__(self, options: LoadOptions, metrics: AgentMetrics) -> None:
        self.options = options
        self._metrics = metrics

    def verify(self, url: str) -> VerifiedPackage:
        """Verify a folder in place, or unpack-and-verify a package file into ``model_dir``."""
        path = _local_path(url)
        keys = load_public_keys(self.options.trusted_keys_dir)
        if path.is_dir():
            return VerifiedPackage(path, verify_package_dir(path, keys), url, None)
        if not path.name.endswith(PACKAGE_SUFFIXES):
            raise PackageError(f"{clip(url)!r} is neither a package folder nor a .tar.gz package file")
        stem = path.name.removesuffix(".tgz").removesuffix(".tar.gz")
        dest = self.options.model_dir / f"{stem}.{uuid.uuid4().hex[:8]}"
        unpacked, manifest = unpack_package(path, dest, keys)
        return VerifiedPackage(unpacked, manifest, url, unpacked)

    def build(self, package: VerifiedPackage, name: str, variant: str, warmup: bool) -> LoadedModel:
        """Create the session, warm it up on the golden input, and measure load time and memory."""
        manifest = package.manifest
        self._check_manifest_size(package.path)
        chosen, automatic = self._requested(variant, manifest)
        rss_before, started = rss_bytes(), time.perf_counter()
        fallback, tuning = "", None
        if chosen == "int8" and automatic:
            session, tuning, fallback = self._int8_or_fallback(package, name, warmup)
            chosen = "fp32" if fallback else "int8"
        else:
            session, tuning = self._open_session(package, name, VARIANT_FILES[chosen], chosen, warmup)
        if warmup:
            self._warm_up(session, package)
        load_ms = (time.perf_counter() - started) * 1000.0
        model = LoadedModel(
            name=name,
            version=manifest.version,
            manifest=manifest,
            manifest_json=(package.path / MANIFEST_FILE).read_text(encoding="utf-8"),
            session=session,
            path=package.path,
            url=package.url,
            sha256=manifest.files[VARIANT_FILES[chosen]],
            variant=chosen,
            load_ms=load_ms,
            memory_bytes=max(0, rss_bytes() - rss_before),
            loaded_at_ns=time.time_ns(),
            stats=VersionStats(self._metrics, name, manifest.version),
            owned_dir=package.owned,
            tuning=tuning,
            variant_fallback=fallback,
        )
        self._metrics.record_tuning(name, manifest.version, tuning)
        requested = "int8" if fallback else chosen
        self._metrics.model_variant.labels(name, model.version, chosen, requested).set(1)
        log.info(
            "model_loaded",
            model=name,
            version=model.version,
            provider=session.provider,
            variant=chosen,
            variant_fallback=fallback or None,
            load_ms=round(load_ms, 1),
            memory_bytes=model.memory_bytes,
        )
        return model

    def _open_session(
        self, package: VerifiedPackage, name: str, model_file: str, variant: str, measure: bool
    ) -> tuple[ModelSession, ProviderChoice | None]:
        """The session of the fastest correct provider and threads (``tuning``), or the defaults."""
        manifest, options = package.manifest, self.options

        def golden() -> Golden:
            golden_input, expected = load_golden(package.path, manifest)
            feeds = {manifest.input.name: golden_input}
            return Golden(feeds, expected, per_image_score=variant == "int8")

        request = SessionRequest(
            ref=f"{name}:{manifest.version}",
            model_path=package.path / model_file,
            model_sha256=manifest.files[model_file],
            variant=variant,
            providers=options.providers,
            max_batch=options.max_batch,
            intra_op_threads=options.intra_op_threads,
            allow_spinning=options.allow_spinning,
            golden=golden if manifest.golden is not None else None,
            measure=measure,
        )
        return open_session(request, options.tuning)

    def _requested(self, variant: str, manifest: Manifest) -> tuple[str, bool]:
        """The variant to load and whether it was chosen automatically (and so may fall back to fp32).

        An explicit ``variant`` wins, then a forced ``EI_PRECISION``; either must exist in the package.
        """
        if variant and variant not in VARIANT_FILES:
            raise InvalidInputError(f"variant {clip(variant)!r} is unknown; expected '', 'fp32' or 'int8'")
        forced = variant or (self.options.precision if self.options.precision != "auto" else "")
        chosen = forced or manifest.default_variant
        if chosen == "int8" and not manifest.has_int8:
            why = f"variant {chosen!r}" if variant else "EI_PRECISION=int8"
            raise InvalidInputError(
                f"package {manifest.name}:{manifest.version} has no {INT8_MODEL_FILE} for {why}",
                hint="load the fp32 variant (EI_PRECISION=auto or fp32), or ship a package with an int8 "
                "model that passed compile's int8 gates",
            )
        return chosen, not forced

    def _int8_or_fallback(
        self, package: VerifiedPackage, name: str, measure: bool
    ) -> tuple[ModelSession, ProviderChoice | None, str]:
        """The int8 session when it loads and answers the golden input here; else fp32 and why."""
        manifest = package.manifest
        try:
            session, tuning = self._open_session(package, name, INT8_MODEL_FILE, "int8", measure)
            problem = self._int8_golden_problem(session, package)
        except (ModelLoadError, InferenceError, InvalidInputError) as exc:
            problem = f"int8 model cannot run on this box: {exc.message}"
        if problem is None:
            return session, tuning, ""
        reason = clip(f"{problem}; running {MODEL_FILE} (fp32) instead", 500)
        log.warning(
            "int8_fallback",
            model=manifest.name,
            version=manifest.version,
            reason=reason,
            providers=[p.name for p in self.options.providers],
        )
        session, tuning = self._open_session(package, name, MODEL_FILE, "fp32", measure)
        return session, tuning, reason

    def _int8_golden_problem(self, session: ModelSession, package: VerifiedPackage) -> str | None:
        """Why the int8 session's image scores miss the golden outputs beyond the int8 tolerance."""
        golden_input, golden_outputs = load_golden(package.path, package.manifest)
        feeds = {package.manifest.input.name: golden_input}
        try:
            session.validate(feeds)
        except InvalidInputError as exc:
            return f"golden input does not fit the int8 model: {exc.message}"
        got = session.run(feeds)
        problem = compare_outputs(
            got, golden_outputs, 0.0, self.options.int8_golden_atol, per_image_score=True
        )
        return f"int8 model fails its golden-input check here: {problem}" if problem else None

    def _check_manifest_size(self, folder: Path) -> None:
        """Every client's ListVersions carries each manifest: one huge manifest must not break them."""
        size = (folder / MANIFEST_FILE).stat().st_size
        if size > self.options.max_manifest_bytes:
            raise PackageError(
                f"manifest.json is {size} bytes; this agent loads manifests of at most "
                f"{self.options.max_manifest_bytes} bytes (EI_MAX_MANIFEST_BYTES)",
                hint="keep large data (metrics, notes) out of the manifest",
            )

    def _warm_up(self, session: ModelSession, package: VerifiedPackage) -> None:
        """Run the golden input so the first real request does not pay for lazy allocations."""
        golden_input, _ = load_golden(package.path, package.manifest)
        feeds = {package.manifest.input.name: golden_input}
        try:
            session.validate(feeds)
        except InvalidInputError as exc:
            raise ModelLoadError(f"golden input does not fit the model: {exc.message}") from exc
        for _ in range(self.options.warmup_runs):
            session.run(feeds)

    def discard(self, package: VerifiedPackage | LoadedModel) -> None:
        """Remove a folder the agent unpacked itself (never one it was given), and a version's series."""
        if isinstance(package, LoadedModel):
            requested = "int8" if package.variant_fallback else package.variant
            labels = (package.name, package.version, package.variant, requested)
            with contextlib.suppress(KeyError):
                self._metrics.model_variant.remove(*labels)
        owned = package.owned if isinstance(package, VerifiedPackage) else package.owned_dir
        if owned is not None:
            shutil.rmtree(owned, ignore_errors=True)
