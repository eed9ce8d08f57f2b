"""Batched prediction: calls for the same version are stacked on the batch axis and run once.

Stacking only happens when the model declares a dynamic batch axis on every input and output and
the calls agree on every other dimension; otherwise the calls run one by one. Either way each call
gets its own outputs back, in request order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Protocol

import numpy as np
from edgeinspect.core.errors import EdgeInspectError

from edgeinspect_inference.agent.errors import status_name
from edgeinspect_inference.agent.loader import LoadedModel
from edgeinspect_inference.agent.records import AliasEntry, Feeds, PredictCall, PredictOutcome, Role
from edgeinspect_inference.agent.shadow import ShadowOutcome

Resolved = tuple[LoadedModel, AliasEntry | None]


class Executor(Protocol):
    """What batching needs from the model table."""

    def execute(self, model: LoadedModel, feeds: Feeds) -> tuple[dict[str, np.ndarray], float]: ...

    def follow_with_shadow(
        self,
        alias: AliasEntry | None,
        model: LoadedModel,
        feeds: Feeds,
        outputs: Mapping[str, np.ndarray],
        wait: bool,
    ) -> ShadowOutcome | None: ...

    def role_of(self, model: LoadedModel) -> Role: ...


def run_batch(
    table: Executor, calls: Sequence[PredictCall], resolved: Sequence[Resolved], wait_shadow: bool
) -> list[PredictOutcome]:
    """Run every call, grouping those that resolved to the same version (and alias)."""
    groups: dict[tuple[int, int], list[int]] = {}
    for index, (model, alias) in enumerate(resolved):
        groups.setdefault((id(model), id(alias)), []).append(index)
    results: dict[int, PredictOutcome] = {}
    for indices in groups.values():
        model, alias = resolved[indices[0]]
        role: Role = "primary" if alias is not None else table.role_of(model)
        feeds = [calls[i].inputs for i in indices]
        for index, call_feeds in zip(indices, feeds, strict=True):
            _validate(model, call_feeds, index)
        if len(indices) > 1 and _stackable(model, feeds):
            outcomes = _run_stacked(table, model, alias, feeds, role, wait_shadow)
        else:
            outcomes = [_run_one(table, model, alias, f, role, wait_shadow) for f in feeds]
        results.update(zip(indices, outcomes, strict=True))
    return [results[index] for index in range(len(calls))]


def _validate(model: LoadedModel, feeds: Feeds, index: int) -> None:
    try:
        model.session.validate(feeds)
    except EdgeInspectError as exc:
        model.stats.record_error(status_name(exc))
        raise type(exc)(f"request {index}: model {model.ref}: {exc.message}", hint=exc.hint) from exc


def _stackable(model: LoadedModel, feeds: Sequence[Feeds]) -> bool:
    session = model.session
    if not all(spec.dynamic_batch for spec in (*session.inputs, *session.outputs)):
        return False
    first = feeds[0]
    first_input = next(iter(first))
    if sum(f[first_input].shape[0] for f in feeds) > session.max_batch:
        return False  # each call is within the batch cap; their sum need not be (run one by one)
    return all(f[name].shape[1:] == first[name].shape[1:] for f in feeds[1:] for name in first)


def _run_one(
    table: Executor, model: LoadedModel, alias: AliasEntry | None, feeds: Feeds, role: Role, wait: bool
) -> PredictOutcome:
    outputs, latency_ms = table.execute(model, feeds)
    shadow = table.follow_with_shadow(alias, model, feeds, outputs, wait)
    return PredictOutcome(model.name, model.version, outputs, latency_ms, role, shadow)


def _run_stacked(
    table: Executor,
    model: LoadedModel,
    alias: AliasEntry | None,
    feeds: Sequence[Feeds],
    role: Role,
    wait: bool,
) -> list[PredictOutcome]:
    stacked = {name: np.concatenate([f[name] for f in feeds]) for name in feeds[0]}
    outputs, latency_ms = table.execute(model, stacked)
    shadow = table.follow_with_shadow(alias, model, stacked, outputs, wait)
    first_input = next(iter(feeds[0]))
    cuts = np.cumsum([f[first_input].shape[0] for f in feeds])[:-1]
    per_call = _split(outputs, cuts)
    shadows: list[ShadowOutcome | None] = [None] * len(feeds)
    if shadow is not None:
        shadows = [replace(shadow, outputs=part) for part in _split(shadow.outputs, cuts)]
    return [
        PredictOutcome(model.name, model.version, part, latency_ms, role, shadow_part)
        for part, shadow_part in zip(per_call, shadows, strict=True)
    ]


def _split(outputs: Mapping[str, np.ndarray], cuts: np.ndarray) -> list[dict[str, np.ndarray]]:
    pieces = {name: np.split(array, cuts) for name, array in outputs.items()}
    return [{name: pieces[name][i] for name in outputs} for i in range(len(cuts) + 1)]
