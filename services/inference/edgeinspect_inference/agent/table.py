"""The model table: the one place where versions are loaded, unloaded, aliased, shadowed and run.

Everything readers need (versions, newest version per name, aliases) lives in one immutable
:class:`_State` that writers replace with a single attribute assignment. A request reads the state
once and holds the :class:`LoadedModel` it resolved, so an alias move never makes a request fail or
wait: requests in flight finish on the version they started with, the next one sees the new target.
No gRPC here: the servicers are thin adapters, and this class is tested directly.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
from edgeinspect.core.agent_client import ModelStats
from edgeinspect.core.errors import EdgeInspectError
from edgeinspect.core.observability import get_logger
from edgeinspect.core.package import NAME_PATTERN, parse_version

from edgeinspect_inference.agent.batching import run_batch
from edgeinspect_inference.agent.errors import (
    InvalidInputError,
    ModelExistsError,
    ModelInUseError,
    ModelNotFoundError,
    clip,
    status_name,
)
from edgeinspect_inference.agent.loader import LoadedModel, PackageLoader
from edgeinspect_inference.agent.records import AliasEntry, Feeds, PredictCall, PredictOutcome, Role
from edgeinspect_inference.agent.shadow import ShadowOutcome, ShadowRunner
from edgeinspect_inference.agent.stats import AgentMetrics

log = get_logger(__name__)
_NAME_RE = re.compile(NAME_PATTERN)


@dataclass(frozen=True)
class _State:
    models: Mapping[tuple[str, str], LoadedModel]
    latest: Mapping[str, LoadedModel]
    aliases: Mapping[str, AliasEntry]


def _state(models: Mapping[tuple[str, str], LoadedModel], aliases: Mapping[str, AliasEntry]) -> _State:
    latest: dict[str, LoadedModel] = {}
    for model in models.values():
        best = latest.get(model.name)
        if best is None or parse_version(model.version) > parse_version(best.version):
            latest[model.name] = model
    return _State(MappingProxyType(dict(models)), MappingProxyType(latest), MappingProxyType(dict(aliases)))


def check_name(name: str, what: str) -> None:
    """Names follow the SageMaker Edge ``LoadModel`` rule, so they work on both APIs and in URLs."""
    if not _NAME_RE.match(name) or len(name) > 63:
        raise InvalidInputError(
            f"{what} {clip(name)!r} is invalid: "
            "expected letters and digits joined by '-', at most 63 characters"
        )


class ModelTable:
    """Load/unload/alias/shadow/predict over ONNX Runtime sessions, safe under concurrent requests."""

    def __init__(
        self, loader: PackageLoader, metrics: AgentMetrics, shadows: ShadowRunner, shadow_wait_s: float = 5.0
    ) -> None:
        self._loader = loader
        self._metrics = metrics
        self._shadows = shadows
        self._shadow_wait_s = shadow_wait_s
        self._state = _state({}, {})
        self._write_lock = threading.Lock()
        self._load_lock = threading.Lock()

    # ---- versions -------------------------------------------------------------------------------

    def load(
        self,
        url: str,
        *,
        name: str = "",
        variant: str = "",
        warmup: bool = True,
        exclusive_name: bool = False,
    ) -> LoadedModel:
        """Verify and load a package under ``name`` (default: the manifest's name).

        ``exclusive_name`` gives SageMaker ``LoadModel`` semantics: the name must not be loaded at all.
        Loads are serialised (they are rare, and memory is measured per load); predictions are not.
        """
        if name:
            check_name(name, "model name")
        with self._load_lock:
            package = self._loader.verify(url)
            try:
                model_name = name or package.manifest.name
                self._check_free(model_name, package.manifest.version, exclusive_name)
                model = self._loader.build(package, model_name, variant, warmup)
                with self._write_lock:
                    self._check_free(model_name, model.version, exclusive_name)
                    current = self._state
                    models = {**current.models, (model.name, model.version): model}
                    self._state = _state(models, current.aliases)
                    self._metrics.models_loaded.set(len(models))
            except BaseException:
                self._loader.discard(package)
                raise
        return model

    def _check_free(self, name: str, version: str, exclusive_name: bool) -> None:
        state = self._state
        alias = state.aliases.get(name)
        if alias is not None and alias.model.name != name:
            raise ModelExistsError(f"{name!r} is an alias of another model; a model cannot take its name")
        if exclusive_name and name in state.latest:
            raise ModelExistsError(
                f"model {name!r} is already loaded (version {state.latest[name].version})",
                hint="unload it first, or load under another name",
            )
        if (name, version) in state.models:
            raise ModelExistsError(f"model {name}:{version} is already loaded", hint="unload it first")

    def unload(self, name: str, version: str = "") -> list[LoadedModel]:
        """Unload one version, or every version of ``name`` when ``version`` is empty.

        Refused while an alias points at a version (move or detach it first); requests already
        running on it finish normally, since they hold their own reference.
        """
        with self._write_lock:
            current = self._state
            doomed = [m for key, m in current.models.items() if key[0] == name and version in ("", key[1])]
            if not doomed:
                ref = clip(f"{name}{':' + version if version else ''}")
                raise ModelNotFoundError(f"model {ref} is not loaded")
            for entry in current.aliases.values():
                for model in doomed:
                    if model in (entry.model, entry.shadow):
                        raise ModelInUseError(
                            f"alias {entry.alias!r} uses {model.ref}",
                            hint="point the alias at another version (or detach the shadow) first",
                        )
            models = {k: m for k, m in current.models.items() if m not in doomed}
            self._state = _state(models, current.aliases)
            self._metrics.models_loaded.set(len(models))
        for model in doomed:
            self._loader.discard(model)
            self._metrics.forget_tuning(model.name, model.version)
            log.info("model_unloaded", model=model.name, version=model.version)
        return doomed

    def versions(self) -> list[LoadedModel]:
        """Every loaded version, by name then version."""
        models = self._state.models.values()
        return sorted(models, key=lambda m: (m.name, parse_version(m.version)))

    def latest_versions(self) -> list[LoadedModel]:
        """The newest version of each loaded model name (what ``ListModels`` shows)."""
        return sorted(self._state.latest.values(), key=lambda m: m.name)

    def resolve(self, ref: str) -> tuple[LoadedModel, AliasEntry | None]:
        """An alias, ``name:version`` or ``name`` (its newest version) -> the loaded version (and alias)."""
        state = self._state
        entry = state.aliases.get(ref)
        if entry is not None:
            return entry.model, entry
        name, sep, version = ref.partition(":")
        model = state.models.get((name, version)) if sep else state.latest.get(name)
        if model is None:
            known = sorted([*state.aliases, *state.latest])
            raise ModelNotFoundError(
                f"no model, version or alias {clip(ref)!r} is loaded; loaded: {clip(str(known), 400)}"
            )
        return model, None

    # ---- aliases --------------------------------------------------------------------------------

    def set_alias(self, alias: str, name: str, version: str) -> AliasEntry:
        """Point ``alias`` at ``name:version`` in one atomic step; a shadow equal to it is detached."""
        check_name(alias, "alias")
        with self._write_lock:
            current = self._state
            # An alias may carry its own model's name (registry group defect-cls -> alias defect-cls):
            # aliases resolve before names, so the pinned version answers, never the newest one.
            if alias in current.latest and alias != name:
                raise InvalidInputError(
                    f"alias {alias!r} is the name of another loaded model; choose another alias"
                )
            model = self._loaded(current, name, version)
            old = current.aliases.get(alias)
            shadow = old.shadow if old is not None and old.shadow is not model else None
            if shadow is not None and shadow.name != model.name:
                shadow = None
            entry = AliasEntry(alias, model, shadow)
            self._state = _state(current.models, {**current.aliases, alias: entry})
        log.info(
            "alias_moved", alias=alias, model=name, version=version, previous=old.model.ref if old else ""
        )
        return entry

    def set_shadow(self, alias: str, version: str) -> AliasEntry:
        """Attach version ``version`` of the alias's model as its shadow, or detach with ``""``."""
        with self._write_lock:
            current = self._state
            old = current.aliases.get(alias)
            if old is None:
                raise ModelNotFoundError(f"alias {clip(alias)!r} does not exist", hint="set the alias first")
            shadow = self._loaded(current, old.model.name, version) if version else None
            if shadow is old.model:
                raise InvalidInputError(
                    f"{shadow.ref} is the alias's primary; a shadow must be another version"
                )
            entry = AliasEntry(alias, old.model, shadow)
            self._state = _state(current.models, {**current.aliases, alias: entry})
        log.info("shadow_set", alias=alias, primary=old.model.ref, shadow=shadow.ref if shadow else "")
        return entry

    def aliases(self) -> list[AliasEntry]:
        return sorted(self._state.aliases.values(), key=lambda e: e.alias)

    @staticmethod
    def _loaded(state: _State, name: str, version: str) -> LoadedModel:
        model = state.models.get((name, version))
        if model is None:
            ref = f"{clip(name)}:{clip(version)}"
            raise ModelNotFoundError(f"model {ref} is not loaded", hint="load it first")
        return model

    def role_of(self, model: LoadedModel) -> Role:
        """``primary`` if an alias points at it, ``shadow`` if attached as a shadow, else ``""``."""
        entries = self._state.aliases.values()
        if any(e.model is model for e in entries):
            return "primary"
        return "shadow" if any(e.shadow is model for e in entries) else ""

    # ---- predictions ----------------------------------------------------------------------------

    def predict(self, ref: str, inputs: Feeds, *, wait_shadow: bool = False) -> PredictOutcome:
        """Run the model ``ref`` resolves to; a shadow (if the alias has one) runs afterwards, off-path."""
        model, alias = self._resolve_counted(ref)
        outputs, latency_ms = self.execute(model, inputs)
        shadow = self.follow_with_shadow(alias, model, inputs, outputs, wait_shadow)
        role: Role = "primary" if alias is not None else self.role_of(model)
        return PredictOutcome(model.name, model.version, outputs, latency_ms, role, shadow)

    def predict_batch(
        self, calls: Sequence[PredictCall], *, wait_shadow: bool = False
    ) -> list[PredictOutcome]:
        """Predict many; calls for the same version with a dynamic batch axis run as one ``session.run``."""
        resolved = [self._resolve_counted(call.model, index) for index, call in enumerate(calls)]
        return run_batch(self, calls, resolved, wait_shadow)

    def count_error(self, ref: str, exc: BaseException) -> None:
        """Count a request that failed before reaching the table (e.g. undecodable tensors)."""
        try:
            model, _ = self.resolve(ref)
        except ModelNotFoundError:
            self._metrics.error("", status_name(exc))
            return
        model.stats.record_error(status_name(exc))

    def _resolve_counted(self, ref: str, index: int | None = None) -> tuple[LoadedModel, AliasEntry | None]:
        try:
            return self.resolve(ref)
        except ModelNotFoundError as exc:
            self._metrics.error("", status_name(exc))
            if index is None:
                raise
            raise ModelNotFoundError(f"request {index}: {exc.message}", hint=exc.hint) from exc

    def execute(self, model: LoadedModel, feeds: Feeds) -> tuple[dict[str, np.ndarray], float]:
        """Run one version with in-flight, latency and error accounting; errors name the version."""
        model.stats.begin()
        started = time.perf_counter()
        try:
            outputs = model.session.run(feeds)
        except EdgeInspectError as exc:
            model.stats.end(None, status_name(exc))
            raise type(exc)(f"model {model.ref}: {exc.message}", hint=exc.hint) from exc
        latency_ms = (time.perf_counter() - started) * 1000.0
        model.stats.end(latency_ms)
        return outputs, latency_ms

    def follow_with_shadow(
        self,
        alias: AliasEntry | None,
        model: LoadedModel,
        feeds: Feeds,
        outputs: Mapping[str, np.ndarray],
        wait: bool,
    ) -> ShadowOutcome | None:
        """Queue the alias's shadow (if any) on the primary's inputs; wait for it only when asked."""
        if alias is None or alias.shadow is None:
            return None
        future = self._shadows.submit(alias.alias, model, alias.shadow, feeds, outputs)
        if future is None or not wait:
            return None
        try:
            return future.result(timeout=self._shadow_wait_s)
        except Exception:  # a failed or slow shadow never fails the primary; the runner logged it
            return None

    def stats(self, name: str = "") -> list[tuple[LoadedModel, ModelStats]]:
        """Counters of every version (or of the versions of ``name``)."""
        return [(m, m.stats.snapshot()) for m in self.versions() if name in ("", m.name)]

    def close(self) -> None:
        """Stop shadow threads (after the server has drained its requests)."""
        self._shadows.shutdown(wait=True)
