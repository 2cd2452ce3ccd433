"""A call reads only the trials its history gained since an earlier call (core/algorithms/grown.py),
and answers exactly as if it had read the whole history."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from tuneforge.core.algorithms import create_algorithm
from tuneforge.core.algorithms.base import SuggestRequest
from tuneforge.core.algorithms.grown import (
    Folded,
    GrowingHistory,
    best_of,
    gained,
    keys_in_use,
)
from tuneforge.core.algorithms.history import encode_param_sets, rank_keys, rank_trials
from tuneforge.core.space import SearchSpace
from tuneforge.core.study import parse_study_spec
from tuneforge.core.trials import Metric, Trial, TrialState

SPACE = SearchSpace.from_list(
    [
        {"name": "a", "type": "int", "low": -50, "high": 50},
        {"name": "b", "type": "int", "low": 0, "high": 9},
        {"name": "kind", "type": "categorical", "values": ["x", "y", "z"]},
    ]
)
LOSS = (Metric("loss"),)


def trial(number: int, rng: random.Random, state: TrialState = TrialState.COMPLETED) -> Trial:
    params = {"a": rng.randint(-50, 50), "b": rng.randint(0, 9), "kind": rng.choice("xyz")}
    values = {"loss": rng.random(), "cost": rng.random()} if state == TrialState.COMPLETED else None
    return Trial(number=number, state=state, params=params, values=values)


def grow(history: Sequence[Trial], new: Sequence[Trial]) -> tuple[Trial, ...]:
    """``history`` with ``new`` inserted in number order, as the server's cache does."""
    return tuple(sorted([*history, *new], key=lambda t: t.number))


def test_gained_finds_the_inserted_trials_wherever_they_landed() -> None:
    rng = random.Random(0)
    before = tuple(trial(n, rng) for n in range(0, 400, 2))
    new = [trial(n, rng) for n in (1, 201, 399, 401, 402)]
    now = grow(before, new)
    assert gained(before, now, limit=10_000) == new
    assert gained(now, now, limit=0) == []
    assert gained(before, (*before, new[-1]), limit=1) == [new[-1]]


def test_gained_refuses_what_is_not_an_insertion_or_more_than_the_limit() -> None:
    rng = random.Random(1)
    before = tuple(trial(n, rng) for n in range(100))
    assert gained(before, before[:50] + before[51:], limit=1000) is None  # a trial went missing
    copies = tuple(Trial(number=t.number, state=t.state, params=t.params) for t in before)
    assert gained(before, copies, limit=1000) is None  # equal trials, other objects
    early = grow(before, [trial(-1, rng)])
    assert gained(before, early, limit=1000) is None  # the first trial moved
    middle = grow(before, [Trial(number=10, state=TrialState.COMPLETED, params={"a": 1})])
    assert gained(before, middle, limit=1) == [middle[11]]
    three = grow(before, [trial(n, rng) for n in (100, 101, 102)])
    assert gained(before, three, limit=2) is None  # more new trials than the caller reads
    other = (*before[:99], trial(99, rng), trial(100, rng))
    assert gained(before, other, limit=1000) is None  # the last trial is another object
    # A rule's view showed a paused trial, then dropped it as a new trial finished: the
    # length and both ends are as an insertion would leave them, the middle is not.
    view = (*before[:40], *before[41:60], trial(60, rng), *before[60:])
    assert gained(before, view, limit=1000) is None
    # The cache's histories promise to only grow: then only the probed places are read.
    grown = GrowingHistory(grow(before, [trial(100, rng)]))
    assert gained(GrowingHistory(before), grown, limit=1) == [grown[-1]]


class CountingSpace(SearchSpace):
    """A space that counts its ``key`` calls."""

    calls = 0

    def key(self, params: Any) -> tuple[Any, ...]:
        CountingSpace.calls += 1
        return super().key(params)


def test_keys_in_use_reads_only_the_new_trials_and_holds_every_key() -> None:
    space = CountingSpace(SPACE.parameters)
    rng = random.Random(2)
    history: tuple[Trial, ...] = tuple(trial(n, rng) for n in range(3000))
    in_flight = [trial(n, rng, TrialState.ACTIVE) for n in (3000, 3001)]
    keys_in_use(space, history, in_flight)
    for step in range(5):
        new = [trial(3002 + 3 * step + i, rng) for i in range(3)]
        history = grow(history, new)
        CountingSpace.calls = 0
        keys = keys_in_use(space, history, in_flight)
        # The keys of the trials finished since the first call (until a reread pays off),
        # not one per finished trial.
        assert CountingSpace.calls == 3 * (step + 1) + len(in_flight)
        for t in (*history, *in_flight):
            assert SPACE.key(t.params) in keys
        assert SPACE.key({"a": 51, "b": 0, "kind": "x"}) not in keys  # no such point
        keys.add(SPACE.key({"a": 51, "b": 0, "kind": "x"}))
        assert SPACE.key({"a": 51, "b": 0, "kind": "x"}) in keys
    # What one call added is its own: the next call does not see it.
    assert SPACE.key({"a": 51, "b": 0, "kind": "x"}) not in keys_in_use(space, history, ())


def test_the_best_trials_fold_merges_new_trials_with_the_held_best_as_a_full_ranking() -> None:
    rng = random.Random(3)
    held: Folded[tuple[tuple[Any, Trial], ...]] = Folded()
    read: list[int] = []

    def keys(trials: Sequence[Trial]) -> list[Any]:
        read.append(len(trials))
        return list(rank_keys(trials, LOSS))

    history: tuple[Trial, ...] = tuple(trial(n, rng) for n in range(0, 2000, 2))
    pruned = Trial(number=5, state=TrialState.PRUNED, params={"a": 0, "b": 0, "kind": "x"})
    for step in range(6):
        new = [trial(2000 + 10 * step + i, rng) for i in range(4)]
        new.append(trial(1 + 2 * step, rng))  # an old number finishing late
        if step == 3:
            new.append(pruned)
        history = grow(history, new)
        read.clear()
        best = [t for _, t in held.of(history, best_of(10, keys), "loss")]
        full = rank_trials(history, LOSS)
        assert [t.number for t in best] == [history[i].number for i in full.order[:10]]
        assert step == 0 or read == [len(new)]  # after the first call: the new trials only
    assert [t for _, t in held.of(history, best_of(10, keys), "other")] == best
    assert read[-1] == len(history)  # another ``what``: read in full


def test_grid_values_encode_in_bulk_as_one_by_one() -> None:
    space = SearchSpace.from_list(
        [
            {"name": "i", "type": "int", "low": -7, "high": 1000},
            {"name": "s", "type": "float", "low": 0.1, "high": 2.3, "step": 0.3},
        ]
    )
    rng = np.random.default_rng(4)
    sets: list[dict[str, Any]] = [
        {"i": int(rng.integers(-7, 1001)), "s": float(0.1 + 0.3 * rng.integers(0, 8))}
        for _ in range(500)
    ]
    sets += [{"i": 3.0, "s": 0.25}, {"i": -7, "s": 2.35}, {"i": 1000, "s": 0.1}]  # halfway
    rows, ok = encode_param_sets(space, sets)
    assert ok.all()
    expected = np.array([space.encode(p) for p in sets])
    assert rows.tobytes() == expected.tobytes()  # bit for bit
    _, ok = encode_param_sets(space, [{"i": float("nan"), "s": 0.4}])
    assert not ok[0]


CASES = [(a, 1) for a in ("genetic", "nsga2", "random", "tpe", "grid", "cmaes")]


@pytest.mark.parametrize(("algorithm", "objectives"), [*CASES, ("genetic", 2), ("nsga2", 2)])
def test_suggestions_are_those_of_a_fresh_read_of_the_history(
    algorithm: str, objectives: int
) -> None:
    """The same run twice: once with the history's trial objects kept between calls (the
    server's cache), once with new copies every call (nothing to reuse). Each call also
    finishes one trial with an old number, which lands in the middle of the history."""
    metrics = [{"name": "loss", "goal": "minimize"}, {"name": "cost", "goal": "minimize"}]
    spec = parse_study_spec(
        {
            "name": "g",
            "parameters": [p.to_dict() for p in SPACE.parameters],
            "metrics": metrics[:objectives],
            "algorithm": algorithm,
        }
    )

    def finished(number: int, params: dict[str, Any], rng: random.Random) -> Trial:
        values = {"loss": rng.random(), "cost": rng.random()}
        return Trial(number, TrialState.COMPLETED, params, values)

    def run(copies: bool, growing: bool = False) -> list[dict[str, Any]]:
        rng = random.Random(5)
        alg = create_algorithm(spec.algorithm, spec.algorithm_options, spec.space)
        late = [trial(n, rng) for n in range(0, 400, 10)]  # in flight until one call each
        history = tuple(finished(t.number + 1, dict(t.params), rng) for t in late)
        history += tuple(trial(n, rng) for n in range(400) if n % 10 > 1)
        history += (  # trials of the other tiers, which rank after the feasible ones
            Trial(1000, TrialState.PRUNED, {"a": 3, "b": 1, "kind": "y"}),
            Trial(1001, TrialState.INFEASIBLE, {"a": -3, "b": 2, "kind": "z"}),
            Trial(1002, TrialState.COMPLETED, {"a": 4, "b": 3, "kind": "x"}, {"cost": 1.0}),
        )
        history = grow(history, [])
        state, out = None, []
        for call in range(12):
            seen = tuple(Trial(t.number, t.state, dict(t.params), t.values) for t in history)
            held = GrowingHistory(history) if growing else history  # as the server's cache
            request = SuggestRequest(
                spec.space, spec.metrics, seen if copies else held, (), 2, 9, state
            )
            suggestion = alg.suggest(request)
            state = suggestion.state
            out.extend(suggestion.params)
            done = [finished(400 + 2 * call + i, p, rng) for i, p in enumerate(suggestion.params)]
            history = grow(history, [*done, finished(late[call].number, late[call].params, rng)])
        return out

    fresh = run(copies=True)
    assert run(copies=False) == fresh
    assert run(copies=False, growing=True) == fresh


@pytest.mark.parametrize("seed", range(6))
def test_genetic_parents_are_the_first_of_rank_trials_with_any_tiers(seed: int) -> None:
    """The parents ``genetic`` keeps between calls are the first ``population_size`` trials
    of :func:`rank_trials` over the whole history, whatever mix of tiers it holds."""
    from tuneforge.core.algorithms.genetic import GeneticSearch
    from tuneforge.core.trials import Goal, Measurement, MetricRole

    rng = random.Random(seed)
    metrics = (
        Metric("loss", Goal.MINIMIZE),
        Metric("cost", Goal.MINIMIZE),
        Metric("mem", Goal.MINIMIZE, MetricRole.CONSTRAINT, threshold=0.7),
    )
    alg = GeneticSearch(GeneticSearch.validate_options({"population_size": 12}, SPACE))

    def finished(number: int) -> Trial:
        params = trial(number, rng).params
        state = rng.choice([TrialState.COMPLETED] * 3 + [TrialState.PRUNED, TrialState.INFEASIBLE])
        values = {m: round(rng.random(), 1) for m in ("loss", "cost", "mem") if rng.random() < 0.9}
        steps = tuple(Measurement(s, {"loss": rng.random()}) for s in range(rng.randint(0, 3)))
        if state != TrialState.COMPLETED:
            values = {}
        return Trial(number, state, params, values or None, measurements=steps)

    history: tuple[Trial, ...] = ()
    for _ in range(8):
        history = grow(history, [finished(len(history) + i) for i in range(rng.randint(1, 9))])
        request = SuggestRequest(SPACE, metrics, history, (), 1, 0)
        got = alg.population(request).rows
        order = rank_trials(history, metrics).order[:12]
        expected, _ = encode_param_sets(SPACE, [history[i].params for i in order])
        assert got.tobytes() == expected.tobytes()


def test_held_keys_stay_exact_when_their_hashes_collide(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shared keys are held as hashes; a matching hash is confirmed by the trial's key,
    so a point is never taken for one in use because its hash collides with one."""
    import tuneforge.core.algorithms.grown as grown

    rng = random.Random(7)
    history = tuple(trial(n, rng) for n in range(300))
    monkeypatch.setattr(grown, "hash", lambda key: 42, raising=False)  # every key collides
    keys = keys_in_use(SPACE, history, ())
    assert all(SPACE.key(t.params) in keys for t in history)
    used = {SPACE.key(t.params) for t in history}
    points = [{"a": a, "b": b, "kind": "x"} for a in range(-50, 51) for b in range(10)]
    free = [p for p in points if SPACE.key(p) not in used]
    assert free and not any(SPACE.key(p) in keys for p in free)
