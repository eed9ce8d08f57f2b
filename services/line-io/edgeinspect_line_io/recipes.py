"""Recipes: the PLC's ``SelectRecipe`` switches the models the line's worker calls.

The worker calls fixed aliases (``EI_CLS_ALIAS``/``EI_SEG_ALIAS``, ``defect-cls`` and ``defect-seg`` by
default); those are the line's *recipe targets* (``EI_RECIPE_TARGETS``). A recipe ``R`` is a set of
aliases in the agent, one per target, named ``R-<target>`` (recipe ``bolt`` of a line with both
models: ``bolt-defect-cls`` and ``bolt-defect-seg``), deployed like any alias (the model manager, a
rollout). Selecting ``R`` points each target at the version its recipe alias points at, with the
agent's atomic ``SetAlias``: frames already in flight finish on the old version, the next frame is
judged by the new one, and its result names the version that ran.

The switch is the agent's alias table, so it outlives a line-io restart but not an agent restart;
``reconcile`` (every second) re-points a target that drifted (the agent restarted, or the recipe's
alias was rolled to a new version), so the line follows its recipe. Without targets a recipe is only
recorded (the line's models are then managed elsewhere).
"""

from __future__ import annotations

from collections.abc import Sequence

from edgeinspect.core.agent_client import AgentClient
from edgeinspect.core.agent_tls import ClientTls
from edgeinspect.core.observability import get_logger

from edgeinspect_line_io.state import StateError

log = get_logger(__name__)


class RecipeSwitch:
    """Points the line's target aliases at a recipe's aliases through the agent's gRPC API."""

    def __init__(
        self,
        agent_addr: str,
        targets: Sequence[str],
        *,
        token: str = "",
        tls: ClientTls | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        self.targets = tuple(targets)
        self._agent = (
            AgentClient(agent_addr, timeout_s=timeout_s, token=token, tls=tls) if self.targets else None
        )

    @staticmethod
    def source(recipe: str, target: str) -> str:
        """The agent alias that holds ``recipe``'s model for ``target``."""
        return f"{recipe}-{target}"

    def apply(self, recipe: str) -> dict[str, str]:
        """Point every target at ``recipe``'s versions; returns ``{target: "name@version"}``.

        Checked before anything moves: a recipe that lacks an alias for some target is refused
        whole (``StateError``, answered ``BadInvalidArgument``), so a line never runs half a recipe.
        An unreachable agent raises ``AgentError`` (``BadCommunicationError``)."""
        if self._agent is None:
            return {}
        aliases = {a.alias: a for a in self._agent.list_aliases()}
        missing = [self.source(recipe, t) for t in self.targets if self.source(recipe, t) not in aliases]
        if missing:
            raise StateError(
                f"recipe {recipe!r} has no model in the agent: no alias {', '.join(missing)}",
                hint="deploy the recipe's models under those aliases first",
            )
        moved: dict[str, str] = {}
        for target in self.targets:
            want = aliases[self.source(recipe, target)]
            have = aliases.get(target)
            if have is None or (have.name, have.version) != (want.name, want.version):
                self._agent.set_alias(target, want.name, want.version)
                log.info("recipe_alias_moved", recipe=recipe, alias=target, model=want.name,
                         version=want.version)  # fmt: skip
            moved[target] = f"{want.name}@{want.version}"
        return moved

    def active(self, recipes: Sequence[str]) -> str | None:
        """The first of ``recipes`` the targets already point at (a restarted line-io keeps the PLC's
        selection); None when none matches or there are no targets."""
        if self._agent is None:
            return None
        aliases = {a.alias: (a.name, a.version) for a in self._agent.list_aliases()}
        for recipe in recipes:
            wanted = [aliases.get(self.source(recipe, t)) for t in self.targets]
            if None not in wanted and wanted == [aliases.get(t) for t in self.targets]:
                return recipe
        return None

    def close(self) -> None:
        if self._agent is not None:
            self._agent.close()
