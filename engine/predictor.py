"""The online per-game predictor of the player's next move.

A mixture of small count models, each a Dirichlet posterior that starts from a
population prior and learns this player's habits round by round:

- shift: stay / move up (to what beats the last move) / move down, given the last
  outcome; the prior is what the people of Wang, Xu & Zhou (2014) did after the same
  last two outcomes and last shift (datasets/README.md), so the player's own counts
  refine a population habit that already knows the context. Once this player's shifts
  over every outcome are far from the population's (the posterior odds of "a habit of
  their own" against "like the population"), the back-off moves to those shifts instead:
  a player who always stays is caught within a few rounds, also after an outcome they
  have not met yet;
- context: the player's shift given the last two outcomes and the last shift (second
  order), backing off to the shift counts over the player's own shifts;
- counter: the move relative to the bot's last move, given the last outcome;
- rank: the value rank (high, middle, low) of the chosen move;
- frequency: the player's share of each move;
- pattern: what followed the longest earlier repeat of the last moves (catches cycles);
- response: the player's next move given their own last move and the last outcome (nine rows), starting
  from the training players' response table (RESPONSE_PRIOR): it knows people's taste for a move in a
  context, which the shift counts (relative to the last move) do not. Its prior weight is below the shift
  expert's: on the real people it adds little (log loss level on rounds 1-60), on people-like players drawn
  from such tables it is what lifts the bot to the plain population-table bot (docs/bot.md).

From round 4 the opponent's trained model (population habits, learned offline) joins as
one more expert. The experts are combined by a Bayesian mixture: each expert's weight
is its prior weight times the likelihood of this player's moves so far, so whichever
has predicted this player best gets the most say. The prior weights favour the shift
expert: on real people (rounds 4-30 of players never seen in training) it is the best
single predictor, and a mixture that lets the weaker experts take over on a few lucky
rounds (an earlier version discounted old rounds by 0.9 a round) loses a point of
accuracy to it. Its state is a deterministic function of the game's history:
replaying the rounds after a restart gives the same predictions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.rules import Round, Values, outcome, ranked

# P(stay, up, down | last outcome win, lose, draw) and the move shares of the 36 training
# players of wxz2014 (groups 01-06, 10,764 transitions); groups 07-12 are kept for evaluation.
SHIFT_PRIOR: tuple[tuple[float, float, float], ...] = (
    (0.329, 0.391, 0.279),
    (0.504, 0.250, 0.246),
    (0.434, 0.228, 0.338),
)
MOVE_PRIOR = (0.360, 0.317, 0.323)
# P(stay, up, down | outcome two rounds ago, shift last round, last outcome), row (o2 * 3 + shift) * 3 + o, from the
# same 10,728 transitions (at least 234 in each context).
CONTEXT_PRIOR: tuple[tuple[float, float, float], ...] = (
    (0.330, 0.461, 0.208), (0.597, 0.238, 0.166), (0.501, 0.238, 0.261),
    (0.347, 0.345, 0.309), (0.577, 0.233, 0.189), (0.455, 0.219, 0.326),
    (0.393, 0.318, 0.289), (0.431, 0.243, 0.327), (0.419, 0.179, 0.402),
    (0.350, 0.426, 0.224), (0.668, 0.184, 0.148), (0.520, 0.162, 0.318),
    (0.308, 0.418, 0.274), (0.321, 0.429, 0.250), (0.369, 0.330, 0.301),
    (0.268, 0.337, 0.395), (0.285, 0.234, 0.481), (0.335, 0.245, 0.419),
    (0.373, 0.354, 0.273), (0.599, 0.210, 0.191), (0.448, 0.189, 0.363),
    (0.290, 0.453, 0.257), (0.355, 0.355, 0.291), (0.408, 0.318, 0.274),
    (0.249, 0.399, 0.352), (0.425, 0.252, 0.323), (0.361, 0.258, 0.381),
)  # fmt: skip
# P(rock, paper, scissors | own last move, last outcome), row 3 * last move + last outcome: the response table of the
# same 36 training players (10,764 transitions, at least 1,068 in each row).
RESPONSE_PRIOR: tuple[tuple[float, float, float], ...] = (
    (0.363, 0.384, 0.253), (0.517, 0.258, 0.225), (0.461, 0.210, 0.329),
    (0.304, 0.316, 0.380), (0.299, 0.478, 0.223), (0.348, 0.413, 0.239),
    (0.412, 0.280, 0.308), (0.265, 0.221, 0.514), (0.240, 0.339, 0.421),
)  # fmt: skip
# People favour the high-value move a little (played as simulated personas do).
RANK_PRIOR = (0.38, 0.33, 0.29)
Probs = Sequence[float] | np.ndarray  # P(rock, paper, scissors)
_UNIFORM = (1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0)
_EXPERTS = ("shift", "context", "counter", "rank", "frequency", "pattern", "response", "model")
_PRIOR_WEIGHT = (10.0, 0.1, 0.1, 0.1, 0.1, 0.1, 3.0, 0.5)
_RESPONSE_STRENGTH = 30.0
_PATTERN_MAX = 4
# The shift expert's back-off: the population's row, or this player's own shifts over every outcome once they are far
# from the population. The weight of the player's own shifts is the posterior of "this player has a habit of their own"
# (a Dirichlet of strength _OWN_STRENGTH over their shifts) against "this player is like the population", from prior
# log odds _OWN_LOG_ODDS.
_OWN_STRENGTH = 1.0
_OWN_LOG_ODDS = -2.0
# A returning player's past games count as at most this many rounds of this game (each past round weighs less when
# there are more): enough to start from their habits, little enough that this game's rounds soon outweigh them.
MEMORY_ROUNDS = 60.0


@dataclass(frozen=True, slots=True)
class Priors:
    """The population priors: P(stay, up, down | last outcome win, lose, draw), the move shares and
    P(stay, up, down | the outcome before, the last shift, the last outcome) (rows as in CONTEXT_PRIOR).

    The defaults are the shipped ones; an evaluation on wxz2014 players fits its own on the players it trains on.
    """

    shift: tuple[tuple[float, float, float], ...] = SHIFT_PRIOR
    move: tuple[float, float, float] = MOVE_PRIOR
    context: tuple[tuple[float, float, float], ...] = CONTEXT_PRIOR
    response: tuple[tuple[float, float, float], ...] = RESPONSE_PRIOR


SHIPPED_PRIORS = Priors()


def _normalise(counts: Sequence[float]) -> list[float]:
    total = sum(counts)
    return [c / total for c in counts]


class _Counts:
    """Dirichlet counts for each context, with a prior of a given strength."""

    def __init__(self, strength: float, table: dict[object, list[float]] | None = None) -> None:
        self.strength = strength
        self.table: dict[object, list[float]] = {} if table is None else table

    def posterior(self, context: object, prior: Sequence[float]) -> list[float]:
        k = self.strength
        a, b, c = k * prior[0], k * prior[1], k * prior[2]
        seen = self.table.get(context)
        if seen is not None:
            a, b, c = a + seen[0], b + seen[1], c + seen[2]
        total = a + b + c
        return [a / total, b / total, c / total]

    def add(self, context: object, index: int) -> None:
        self.table.setdefault(context, [0.0, 0.0, 0.0])[index] += 1.0

    def fold(self, other: _Counts, weight: float) -> None:
        """Add `other`'s counts, each times `weight`."""
        for context, seen in other.table.items():
            mine = self.table.setdefault(context, [0.0, 0.0, 0.0])
            for k in range(3):
                mine[k] += weight * seen[k]


def _from_relative(relative: Sequence[float], anchor: int) -> list[float]:
    """Turn P(anchor + k mod 3) into P(move)."""
    out = [0.0, 0.0, 0.0]
    for k in range(3):
        out[(anchor + k) % 3] = relative[k]
    return out


_Gate = tuple[Sequence[float], list[float]]  # the population's and this player's own P(stay, up, down)


def _context_row(key: tuple[int, int, int]) -> int:
    """The row of CONTEXT_PRIOR for (outcome two rounds ago, last shift, last outcome)."""
    return 9 * key[0] + 3 * key[1] + key[2]


class OnlinePredictor:
    """Predicts the player's next move from this game's rounds so far."""

    def __init__(self, history: Sequence[Round] = (), priors: Priors = SHIPPED_PRIORS) -> None:
        self.priors = priors
        self.rounds: list[Round] = []
        self._pairs = bytearray()  # 3 * player + bot of every round so far: _pattern's search text
        self.log_weights = [math.log(w) for w in _PRIOR_WEIGHT]
        self.own_log_odds = _OWN_LOG_ODDS  # log P(own habit | shifts so far) / P(like the population | ...)
        self.shift_any = _Counts(5.0)  # over every outcome: the back-off of the per-outcome counts
        self.own = _Counts(_OWN_STRENGTH, self.shift_any.table)  # the same counts with a weaker prior
        self.shift = _Counts(10.0)
        self.context = _Counts(4.0)
        self.counter_any = _Counts(5.0)
        self.counter = _Counts(6.0)
        self.rank = _Counts(6.0)
        self.frequency = _Counts(6.0)
        self.response = _Counts(_RESPONSE_STRENGTH)
        # The experts' predictions for (round count, values), with the open round's population and own shifts.
        self._cached: tuple[tuple[int, Values], list[list[float]], _Gate | None] | None = None
        # The last mixture: (round count, values, the model's prediction, P(rock, paper, scissors)).
        self._mixed: tuple[int, Values, Probs | None, tuple[float, float, float]] | None = None
        for r in history:
            self.observe(r)

    def remember(self, games: Sequence[Sequence[Round]], rounds: float = MEMORY_ROUNDS) -> None:
        """Start from a returning player's own past `games` (oldest first) instead of the population alone.

        Each past game is learned as this game would learn it, and its counts (and its evidence for a habit of
        the player's own) are folded in, all the past rounds together weighing at most `rounds` rounds. The
        experts' standing is not carried over: which expert reads this player best is this game's to learn.
        """
        if self.rounds:
            raise ValueError("remember before the game's first round")
        total = sum(len(g) for g in games)
        if not total:
            return
        weight = min(1.0, rounds / total)
        for played in games:
            past = OnlinePredictor(played, self.priors)
            self.own_log_odds += weight * (past.own_log_odds - _OWN_LOG_ODDS)
            for mine, theirs in (
                (self.shift_any, past.shift_any),  # also self.own's table
                (self.shift, past.shift),
                (self.context, past.context),
                (self.counter_any, past.counter_any),
                (self.counter, past.counter),
                (self.rank, past.rank),
                (self.frequency, past.frequency),
                (self.response, past.response),
            ):
                mine.fold(theirs, weight)
        self._cached = None
        self._mixed = None

    def _experts(self, values: Values) -> tuple[list[list[float]], _Gate | None]:
        rounds = self.rounds
        ranks = ranked(values)
        rank_p = self.rank.posterior(None, RANK_PRIOR)
        by_rank = [0.0, 0.0, 0.0]
        for position, move in enumerate(ranks):
            by_rank[move] = rank_p[position]
        frequency = self.frequency.posterior(None, self.priors.move)
        if not rounds:
            return [frequency, frequency, list(_UNIFORM), by_rank, frequency, list(_UNIFORM), frequency], None
        last = rounds[-1]
        last_outcome = outcome(last.player, last.bot)
        key = self._context_key()
        population = self._population(key, last_outcome)
        own = self.own.posterior(None, self.priors.shift[last_outcome])
        w = 1.0 / (1.0 + math.exp(-self.own_log_odds))
        back_off = (
            (1.0 - w) * population[0] + w * own[0],
            (1.0 - w) * population[1] + w * own[1],
            (1.0 - w) * population[2] + w * own[2],
        )
        shift = _from_relative(self.shift.posterior(last_outcome, back_off), last.player)
        # The other conditional models back off to this player's shifts over all outcomes.
        shift_all = self.shift_any.posterior(None, self.priors.shift[last_outcome])
        shift_rel = self.shift.posterior(last_outcome, shift_all)
        context = _from_relative(self.context.posterior(key, shift_rel), last.player)
        counter_all = self.counter_any.posterior(None, _UNIFORM)
        counter = _from_relative(self.counter.posterior(last_outcome, counter_all), last.bot)
        row = 3 * last.player + last_outcome
        response = self.response.posterior(row, self.priors.response[row])
        experts = [shift, context, counter, by_rank, frequency, self._pattern() or frequency, response]
        return experts, (population, own)

    def _population(self, key: tuple[int, int, int] | None, last_outcome: int) -> Sequence[float]:
        """The population's P(stay, up, down) in this context (after round 1: given the last outcome only)."""
        return self.priors.shift[last_outcome] if key is None else self.priors.context[_context_row(key)]

    def _context_key(self) -> tuple[int, int, int] | None:
        if len(self.rounds) < 2:
            return None
        before, last = self.rounds[-2], self.rounds[-1]
        return (
            outcome(before.player, before.bot),
            (last.player - before.player) % 3,
            outcome(last.player, last.bot),
        )

    def _pattern(self) -> list[float] | None:
        """What followed the longest earlier occurrence of the last moves (player and bot), if any."""
        pairs = self._pairs
        n = len(pairs)
        for length in range(min(_PATTERN_MAX, n - 1), 0, -1):
            suffix = pairs[n - length :]
            follow = [0.0, 0.0, 0.0]
            start = pairs.find(suffix, 0, n - 1)  # occurrences that end before the last round, overlaps included
            while start >= 0:
                follow[pairs[start + length] // 3] += 1.0
                start = pairs.find(suffix, start + 1, n - 1)
            if sum(follow):
                return _normalise([f + 0.5 for f in follow])
        return None

    def _mix(self, experts: list[list[float]]) -> list[float]:
        log_weights = self.log_weights[: len(experts)]
        top = max(log_weights)
        total = rock = paper = scissors = 0.0
        for log_weight, expert in zip(log_weights, experts, strict=True):
            weight = math.exp(log_weight - top)
            total += weight
            rock += weight * expert[0]
            paper += weight * expert[1]
            scissors += weight * expert[2]
        return [rock / total, paper / total, scissors / total]

    def _with_model(self, values: Values, model: Probs | None) -> list[list[float]]:
        # The experts depend only on the rounds so far and the values: predict() and the
        # observe() that follows it share one computation.
        key = (len(self.rounds), values)
        if self._cached is None or self._cached[0] != key:
            self._cached = (key, *self._experts(values))
        experts = list(self._cached[1])
        if model is not None:
            experts.append([float(p) for p in model])
        return experts

    def predict(self, values: Values, model: Probs | None = None) -> np.ndarray:
        """P(rock, paper, scissors) for the player's move in the open round with `values`.

        `model` is the trained model's prediction for this round, when there is one.
        """
        return np.array(self.probs(values, model))

    def probs(self, values: Values, model: Probs | None = None) -> tuple[float, float, float]:
        """`predict` as plain floats (the bot's hot path: no array to build and read back). The same call again
        before the next round (the bot's choice, then its surprise once the round is played) is answered from
        the last mixture: nothing it depends on changes until `observe`."""
        last, count = self._mixed, len(self.rounds)
        if last is not None and last[0] == count and last[2] is model and last[1] == values:
            return last[3]
        rock, paper, scissors = self._mix(self._with_model(values, model))
        self._mixed = (count, values, model, (rock, paper, scissors))
        return rock, paper, scissors

    def observe(self, played: Round, model: Probs | None = None) -> None:
        """Learn from a finished round (`model`: what the trained model had predicted for it).

        An expert that did not predict the round (the model before round 4) is a sleeping
        expert: it is charged the mixture's own loss, so it keeps its standing for when it wakes.
        """
        experts = self._with_model(played.values, model)
        mixed = self._mix(experts)[played.player] if len(experts) < len(self.log_weights) else 0.0
        for e in range(len(self.log_weights)):
            p = experts[e][played.player] if e < len(experts) else mixed
            self.log_weights[e] += math.log(max(p, 1e-6))
        if self.rounds:
            last = self.rounds[-1]
            last_outcome = outcome(last.player, last.bot)
            change = (played.player - last.player) % 3
            context = self._context_key()
            assert self._cached is not None and self._cached[2] is not None  # _with_model computed this round
            population, own = self._cached[2]
            self.own_log_odds += math.log(own[change] / max(population[change], 1e-6))
            self.shift.add(last_outcome, change)
            self.shift_any.add(None, change)
            if context is not None:
                self.context.add(context, change)
            self.counter.add(last_outcome, (played.player - last.bot) % 3)
            self.counter_any.add(None, (played.player - last.bot) % 3)
            self.response.add(3 * last.player + last_outcome, played.player)
        self.rank.add(None, ranked(played.values).index(played.player))
        self.frequency.add(None, played.player)
        self.rounds.append(played)
        self._pairs.append(3 * played.player + played.bot)
