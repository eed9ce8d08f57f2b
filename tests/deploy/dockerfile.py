"""A small Dockerfile reader for the image tests: stages, their bases, and what they install.

Why not a full parser: the tests ask a few precise questions (which extra ends up in the image a
target builds, under which base, as which user), and answering them needs only the instruction
list of each stage, global ``ARG`` defaults (overridable like ``--build-arg``), and the ``FROM`` and
``COPY --from`` links between stages.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
_EXTRA = re.compile(r"""["']\.\[([A-Za-z0-9,_-]+)\]["']""")


@dataclass
class Instruction:
    keyword: str
    args: str


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [i.args for i in self.instructions if i.keyword == keyword]


def instructions(text: str) -> list[Instruction]:
    """Logical instructions: continuation lines joined, comment lines dropped (as Docker does)."""
    result: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full:
            keyword, _, args = full.partition(" ")
            result.append(Instruction(keyword.upper(), args.strip()))
    return result


def _expand(text: str, args: dict[str, str]) -> str:
    return _VAR.sub(lambda m: args.get(m.group(1) or m.group(2), m.group(0)), text)


class Dockerfile:
    """The stages of one Dockerfile, with global ARGs expanded in ``FROM`` lines."""

    def __init__(self, path: Path, build_args: dict[str, str] | None = None) -> None:
        self.path = path
        self.global_args: dict[str, str] = {}
        self.stages: dict[str, Stage] = {}
        self.order: list[str] = []
        items = instructions(path.read_text(encoding="utf-8"))
        current: Stage | None = None
        for item in items:
            if item.keyword == "ARG" and current is None:
                name, _, default = item.args.partition("=")
                self.global_args[name] = default.strip().strip('"')
            elif item.keyword == "FROM":
                current = self._start_stage(item.args, build_args or {})
            elif current is not None:
                current.instructions.append(item)

    def _start_stage(self, spec: str, build_args: dict[str, str]) -> Stage:
        values = {**self.global_args, **build_args}
        words = [w for w in spec.split() if not w.startswith("--")]
        base = _expand(words[0], values)
        name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else f"stage{len(self.order)}"
        stage = Stage(name, base)
        self.stages[name] = stage
        self.order.append(name)
        return stage

    @property
    def default_target(self) -> str:
        return self.order[-1]

    def chain(self, target: str) -> list[Stage]:
        """The stage and the stages it is built ``FROM``, nearest first, ending at an image."""
        stages = []
        name = target
        while name in self.stages:
            stage = self.stages[name]
            stages.append(stage)
            name = stage.base
        return stages

    def base_image(self, target: str) -> str:
        """The image (not a stage) the target is ultimately built on."""
        return self.chain(target)[-1].base

    def effective(self, target: str, keyword: str) -> list[str]:
        """A keyword's arguments along the chain, as the final image sees them (base stages first)."""
        return [a for stage in reversed(self.chain(target)) for a in stage.all(keyword)]

    def copies_from(self, target: str) -> list[tuple[str, list[str]]]:
        """``COPY --from=STAGE src... dest`` along the chain: (stage, [sources..., dest])."""
        found = []
        for args in self.effective(target, "COPY"):
            words = shlex.split(args)
            origin = next((w.split("=", 1)[1] for w in words if w.startswith("--from=")), None)
            if origin is not None:
                found.append((origin, [w for w in words if not w.startswith("--")]))
        return found

    def pip_extras(self, stage: str) -> set[str]:
        """Extras of the project (``".[a,b]"``) that pip installs in a stage or the stages below it."""
        extras: set[str] = set()
        for args in self.effective(stage, "RUN"):
            if "pip install" in args:
                for match in _EXTRA.finditer(args):
                    extras.update(match.group(1).split(","))
        return extras

    def build_runs(self, stage: str) -> list[str]:
        """Every RUN that shaped a stage, in build order, through ``FROM`` and ``COPY --from`` links."""
        runs: list[str] = []
        for item in (i for s in reversed(self.chain(stage)) for i in s.instructions):
            origin = re.search(r"--from=(\S+)", item.args) if item.keyword == "COPY" else None
            if origin and origin.group(1) in self.stages:
                runs.extend(self.build_runs(origin.group(1)))
            elif item.keyword == "RUN":
                runs.append(item.args)
        return runs

    def venv_stage(self, target: str) -> str:
        """The stage whose ``/opt/venv`` the target copies in."""
        sources = [origin for origin, paths in self.copies_from(target) if paths[-1] == "/opt/venv"]
        assert len(sources) == 1, f"{self.path}:{target} should copy /opt/venv from exactly one stage"
        return sources[0]

    def venv_extras(self, target: str) -> set[str]:
        """The extras installed in the ``/opt/venv`` that ``target`` copies in."""
        return self.pip_extras(self.venv_stage(target))
