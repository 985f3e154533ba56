"""Promotion runs: the database's evidence through the rules of engine/promotion.py, the result into the
manifest and the promotion ledger (docs/promotion.md).

A run reads, per family, the games Production and B served since B took its alias (tags as in
RPSQUEST_STATS_TAGS) and the shadows' predictions on the same rounds, takes one step of the
lifecycle, writes the new aliases (when they change) and appends the decision, "continue"
included, to the ledger. The trainer runs it after every cycle; `rpsquest promote` and
`POST /api/admin/promote` run it on demand. Blocking: the server calls it off its event loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from engine.promotion import Arm, Lineup, Outcome, PromotionSettings, Step, step
from inference.settings import Settings
from inference.store import ModelStore, stored_manifest, write_manifest
from storage.lifecycle import ArmCounts, Families, Lifecycle, Tenure

PROMOTED_WHY = Outcome.PROMOTE.value  # the `why` of the tenures a promotion starts: B is then watched for rollback
_FLOOR = 1e-12  # log loss of a probability of 0 is capped at -log(1e-12)


@dataclass(frozen=True)
class FamilyRun:
    """One family's step: the decision with its numbers, and the aliases before and after."""

    family: str
    outcome: str
    reason: str
    before: dict[str, str]
    after: dict[str, str]
    details: dict[str, Any]
    ledger_id: int | None  # None on a dry run


def promotion_settings(settings: Settings) -> PromotionSettings:
    return PromotionSettings(
        alpha=settings.promotion_alpha,
        min_games=settings.promotion_min_games,
        margin=settings.promotion_margin,
        split=settings.ab_split,
    )


def _arm(counts: ArmCounts) -> Arm:
    return Arm(counts.started, counts.finished, counts.bot_wins)


def _losses(lifecycle: Lifecycle, family: str, shadows: dict[str, Tenure], tags: tuple[str, ...]) -> dict[str, Any]:
    """Each shadow version's log losses on the rounds every shadow predicted, since the newest took its alias."""
    if not shadows:
        return {}
    since = max(t.started for t in shadows.values())
    versions = [t.version for t in shadows.values()]
    losses: dict[str, list[float]] = {v: [] for v in versions}
    for played in lifecycle.shadow_rounds(family, since, tags):
        if all(v in played.probs for v in versions):
            for v in versions:
                losses[v].append(-math.log(max(played.probs[v][played.player_move], _FLOOR)))
    return losses


def _ledger_change(before: Lineup, result: Step) -> tuple[str | None, str | None, str | None]:
    """(alias, from_version, to_version) of the ledger row: the alias a decision changed, if any."""
    after = result.lineup
    if after.production != before.production:
        return "Production", before.production, after.production
    if after.b != before.b:
        return "B", before.b, after.b
    return None, None, None


def _family_step(
    lifecycle: Lifecycle, family: str, aliases: dict[str, str], settings: Settings, rules: PromotionSettings
) -> tuple[Lineup, Step]:
    """The step of one family from what the database holds."""
    tenures = {t.alias: t for t in lifecycle.tenures(family, current_only=True) if aliases.get(t.alias) == t.version}
    b_tenure = tenures.get("B")
    lineup = Lineup(
        production=aliases["Production"],
        b=aliases.get("B"),
        shadow1=aliases.get("shadow1"),
        shadow2=aliases.get("shadow2"),
        watching=b_tenure is not None and b_tenure.why == PROMOTED_WHY,
    )
    tags = settings.stats_tags
    if lineup.b is not None and b_tenure is not None:
        production = _arm(lifecycle.arm(family, "Production", lineup.production, b_tenure.started, tags))
        b = _arm(lifecycle.arm(family, "B", lineup.b, b_tenure.started, tags))
    else:  # no B, or a B the lifecycle did not place: its test starts now
        production = b = Arm(0, 0, 0)
    shadows = {a: t for a, t in tenures.items() if a in ("shadow1", "shadow2")}
    return lineup, step(lineup, production, b, _losses(lifecycle, family, shadows, tags), rules)


def _replace(family: str, seen: dict[str, str], after: dict[str, str]) -> Callable[[Families], Families]:
    """The manifest change of a step: `family`'s aliases become `after`, unless they changed since they were read
    as `seen` (a training cycle in between): then the step is not applied and the next run decides again."""

    def change(families: Families) -> Families:
        return {**families, family: after} if families.get(family) == seen else families

    return change


def run(settings: Settings, store: ModelStore, families: Sequence[str], dry_run: bool = False) -> list[FamilyRun]:
    """One promotion step of each of `families` that has a Production; nothing is written on a dry run."""
    rules = promotion_settings(settings)
    out: list[FamilyRun] = []
    with Lifecycle(settings.database()) as lifecycle:
        manifest = stored_manifest(store)
        current: Families = manifest[1] if manifest else {}
        for family in families:
            aliases = current.get(family, {})
            if "Production" not in aliases:
                continue
            before, result = _family_step(lifecycle, family, aliases, settings, rules)
            after = result.lineup.aliases()
            details: dict[str, Any] = {
                **result.decision.details(),
                "before": before.aliases(),
                "after": after,
                "tags": list(settings.stats_tags),
                "ranking": [
                    {"version": r.version, "rounds": r.rounds, "log_loss": r.log_loss, "behind": r.behind,
                     "behind_se": r.behind_se}
                    for r in result.ranking
                ],
                "retired": list(result.retired),
            }  # fmt: skip
            ledger_id = None
            if not dry_run:
                if after != aliases:
                    published = lifecycle.publish(
                        lambda: stored_manifest(store),
                        _replace(family, aliases, after),
                        lambda generation, f: write_manifest(store, f, generation),
                        result.decision.outcome.value,
                    )
                    details["applied"] = published.families.get(family) == after
                alias, old, new = _ledger_change(before, result)
                ledger_id = lifecycle.record_decision(family, result.decision.outcome.value, details, alias, old, new)
            out.append(
                FamilyRun(family, result.decision.outcome.value, result.decision.reason, aliases, after, details,
                          ledger_id)
            )  # fmt: skip
    return out
