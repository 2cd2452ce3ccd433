"""The GP algorithms fit in a child process (api/services/fit_pool.py): through the real
app on both backends, a study fitted there gets exactly the suggestions the same study
gets when every fit runs in the server's process, and the fits did run in the child."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest

from tests.conftest import make_client
from tests.specs import score, small_spec
from tests.unit.test_gp import LOSS, done, floats, quadratic_like, random_history
from tuneforge.api.services import fit_pool
from tuneforge.api.services.fit_child import PoolClosed
from tuneforge.core.algorithms import SuggestRequest
from tuneforge.core.algorithms.grown import GrowingHistory
from tuneforge.core.trials import Trial

API = "/api/v1/studies"


def run_study(
    db_url: str, name: str, processes: int, trials: int, algorithm: str = "gp"
) -> list[dict[str, Any]]:
    with make_client(db_url, reconcile_interval_seconds=0, fit_processes=processes) as client:
        spec = small_spec(name, algorithm=algorithm, seed=7, max_trials=trials)
        sid = client.post(API, json=spec).json()["id"]
        out = []
        for _ in range(trials):
            r = client.post(f"{API}/{sid}/trials/suggest", json={"client_id": "w"})
            assert r.status_code == 200, r.text
            trial = r.json()["trials"][0]
            body = {"values": {"accuracy": score(trial["params"])}}
            done = client.post(f"{API}/{sid}/trials/{trial['number']}/complete", json=body)
            assert done.status_code == 200, done.text
            out.append(trial["params"])
        return out


def study_and_child_fits(
    db_url: str, name: str, processes: int, trials: int
) -> tuple[list[dict[str, Any]], int]:
    """:func:`run_study` and how many of its fits the child process answered."""
    before = fit_pool.child_fits
    params = run_study(db_url, name, processes, trials)
    return params, fit_pool.child_fits - before


def in_new_interpreter(*args: Any) -> tuple[list[dict[str, Any]], int]:
    """:func:`study_and_child_fits` in a new interpreter. OpenBLAS (0.3.31 here) ignores a
    thread limit set from another thread once the main thread has set one, so after a
    test that ran GP suggestions on this process's main thread the server's fits (on
    worker threads) would use two BLAS threads and differ in the last bits."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(study_and_child_fits, *args).result()


@pytest.mark.parametrize("trials", [14])
def test_a_child_fit_gives_the_suggestions_of_a_fit_in_the_server(db_url: str, trials: int) -> None:
    far, fitted_far = in_new_interpreter(db_url, "child", 1, trials)
    here, fitted_here = in_new_interpreter(db_url, "server", 0, trials)
    assert fitted_here == 0, "a fit went to the child with 0 processes"
    assert fitted_far >= trials - 10, fitted_far  # every fit past the Sobol' start-up
    assert far == here


def test_only_gaussian_process_fits_go_to_the_child() -> None:
    """``auto`` past its GP phase runs TPE: on a history that is not the cache's (it could
    only go pickled whole, which costs more than the fit) or shorter than
    ``LONG_FIT_FROM`` that fit stays in the server, while its GP phase, ``gp`` and
    ``ehvi`` go to the child; the other algorithms never do."""
    from tuneforge.core.algorithms import get_algorithm
    from tuneforge.core.algorithms.auto import GP_MAX_TRIALS
    from tuneforge.core.space import SearchSpace

    space = SearchSpace.from_list(floats(3))

    def request(n: int) -> SuggestRequest:
        history = tuple(random_history(space, quadratic_like, n))
        return SuggestRequest(space, LOSS, history, (), 1, 0)

    early, late = request(20), request(GP_MAX_TRIALS)
    assert get_algorithm("auto").heavy_fit(early)
    assert not get_algorithm("auto").heavy_fit(late)
    assert get_algorithm("gp").heavy_fit(late) and get_algorithm("ehvi").heavy_fit(late)
    assert not any(get_algorithm(a).heavy_fit(late) for a in ("tpe", "random", "cmaes"))
    configured = fit_pool._processes
    fit_pool.configure(1)
    try:
        before = fit_pool.child_fits
        assert fit_pool.fit_in_child("auto", {}, space, late) is None
        assert fit_pool.fit_in_child("tpe", {"n_startup_trials": 10}, space, late) is None
        assert fit_pool.child_fits == before
    finally:
        fit_pool.configure(configured)


def _grown(history: tuple[Trial, ...], suggestion: Any, first: int, late: int) -> GrowingHistory:
    """``history`` with the suggested points completed (numbers from ``first``), the first
    of them numbered ``late``, among the old trials, as a trial that finished late."""
    points = [d.params for d in suggestion.decisions]
    numbers = [late, *range(first + 1, first + len(points))]
    new = [done(k, p, loss=quadratic_like(p)) for k, p in zip(numbers, points, strict=True)]
    merged = sorted([*history, *new], key=lambda t: t.number)
    old = {id(t) for t in history}
    assert sum(id(t) not in old for t in merged) == len(new)
    return GrowingHistory(merged)


def test_a_long_tpe_history_goes_to_the_child_as_what_it_gained() -> None:
    """Past ``LONG_FIT_FROM`` trials a TPE fit runs in the child, which gets the whole
    history once and then only the trials finished since (inserted where their numbers
    belong, a late one among them): every suggestion equals the server's own fit. A new
    child (the old one stopped) holds nothing: it gets the whole history again."""
    from tuneforge.core.algorithms import create_algorithm
    from tuneforge.core.space import SearchSpace

    space = SearchSpace.from_list(floats(3))
    history = GrowingHistory(
        done(3 * i + 2000, t.params, loss=t.values["loss"])
        for i, t in enumerate(random_history(space, quadratic_like, fit_pool.LONG_FIT_FROM + 50))
    )
    options = {"n_startup_trials": 10}
    configured = fit_pool._processes
    fit_pool.configure(1)
    try:
        deltas, wholes, fits = fit_pool.shipper.deltas, fit_pool.shipper.wholes, fit_pool.child_fits
        state = None
        for call in range(6):
            if call == 4:
                fit_pool.shutdown()  # the next fit starts a child that holds nothing
            request = SuggestRequest(space, LOSS, history, (), 3, 5, state)
            far = fit_pool.fit_in_child("tpe", options, space, request)
            here = create_algorithm("tpe", options, space).suggest(request)
            assert far is not None
            assert far.decisions == here.decisions and far.state == here.state
            state = here.state
            history = _grown(history, here, 100_000 + 10 * call, 2001 + 30 * call)
        assert fit_pool.child_fits - fits == 6
        assert fit_pool.shipper.wholes - wholes == 2, "the first fit, then the new child's"
        assert fit_pool.shipper.deltas - deltas == 5, "one of them answered Missing"
        plain = SuggestRequest(space, LOSS, tuple(history), (), 1, 5, state)
        assert fit_pool.fit_in_child("tpe", options, space, plain) is None
        short = SuggestRequest(space, LOSS, GrowingHistory(history[:500]), (), 1, 5, state)
        assert fit_pool.fit_in_child("tpe", options, space, short) is None
        fit_pool.configure(2)  # a fit would go to either child: TPE stays in the server
        long = SuggestRequest(space, LOSS, history, (), 1, 5, state)
        assert fit_pool.fit_in_child("tpe", options, space, long) is None
    finally:
        fit_pool.shutdown()
        fit_pool.configure(configured)


def test_the_child_copy_of_a_history_is_the_server_history_in_its_order() -> None:
    """What the shipper sends rebuilds, in the mirror, the very sequence of trials the
    server holds: new trials inserted at their numbers (a late one among the old ones),
    a new lineage sent whole, a shipment on a history the mirror lacks refused."""
    from tuneforge.api.services.fit_history import Mirror, Missing, Shipper

    shipper, mirror = Shipper(), Mirror()

    def trial(k: int) -> Trial:
        return done(k, {"x0": k / 1000}, loss=float(k))

    history = GrowingHistory(trial(k) for k in range(0, 300, 3))
    for step in range(4):
        shipment = shipper.ship(history)
        assert shipment is not None and (shipment.base < 0) == (step == 0)
        copy = mirror.receive(shipment)
        assert isinstance(copy, GrowingHistory)
        assert [(t.number, t.params) for t in copy] == [(t.number, t.params) for t in history]
        new = [trial(1 + 3 * step), trial(1000 + step), trial(2 + 30 * step)]
        history = GrowingHistory(sorted([*history, *new], key=lambda t: t.number))
    other = GrowingHistory(trial(k) for k in range(5))
    fresh = shipper.ship(other)
    assert fresh is not None and fresh.base < 0 and fresh.token != shipment.token
    assert shipper.ship(tuple(other)) is None  # not the cache's: pickled as it is
    with pytest.raises(Missing):
        Mirror().receive(shipper.ship(history))  # a delta for a mirror that holds nothing


def test_a_tpe_study_past_the_long_fit_size_gets_the_server_suggestions_through_the_app(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the real app and the history cache: with the long-fit size lowered to 12
    trials, a ``tpe`` study's later fits go to the child with the trials each one gained
    (no whole history after the first), and every suggestion equals the same study's
    with every fit in the server."""
    monkeypatch.setattr(fit_pool, "LONG_FIT_FROM", 12)
    wholes, deltas, fits = fit_pool.shipper.wholes, fit_pool.shipper.deltas, fit_pool.child_fits
    try:
        far = run_study(db_url, "tpe-child", 1, 24, "tpe")
    finally:
        fit_pool.shutdown()
    assert fit_pool.child_fits - fits == 24 - 12
    assert fit_pool.shipper.wholes - wholes == 1
    assert fit_pool.shipper.deltas - deltas == 24 - 12 - 1
    assert far == run_study(db_url, "tpe-server", 0, 24, "tpe")


def test_a_killed_child_is_replaced_and_its_fit_runs_in_the_server() -> None:
    """A child that dies (killed here between two fits, as the kernel's OOM killer
    would) costs the next fit its trip: that one runs in the server, the one after in a
    new child, with the same suggestions as the server's own fit throughout; a child
    whose call was interrupted is not handed out again. SIGINT (Ctrl-C in the server's
    terminal) does not stop a child: the server does, when it stops."""
    import os
    import signal

    from tuneforge.core.algorithms import create_algorithm
    from tuneforge.core.space import SearchSpace

    space = SearchSpace.from_list(floats(2))
    request = SuggestRequest(
        space, LOSS, tuple(random_history(space, quadratic_like, 12)), (), 2, 3
    )
    here = create_algorithm("gp", {}, space).suggest(request)
    configured, broken = fit_pool._processes, fit_pool._broken
    fit_pool.configure(1)
    try:
        first = fit_pool.fit_in_child("gp", {}, space, request)
        assert first is not None and first.decisions == here.decisions
        pool = fit_pool._pool
        assert pool is not None and len(pool._idle) == 1
        child = pool._idle[0]
        os.kill(child.process.pid, signal.SIGINT)  # Ctrl-C in the server's terminal
        fits = fit_pool.child_fits
        again = fit_pool.fit_in_child("gp", {}, space, request)
        assert again is not None and again.decisions == here.decisions
        assert fit_pool.child_fits == fits + 1 and pool._idle == [child], "the same child"
        os.kill(child.process.pid, signal.SIGKILL)
        fits = fit_pool.child_fits
        assert fit_pool.fit_in_child("gp", {}, space, request) is None, "the server fits"
        assert fit_pool._broken == broken + 1 and pool._idle == [] and pool._running == 0
        again = fit_pool.fit_in_child("gp", {}, space, request)
        assert again is not None and again.decisions == here.decisions
        assert fit_pool.child_fits == fits + 1 and pool._running == 1
        fit_pool.shutdown()
        assert pool._running == 0, "the idle child was stopped"
        with pytest.raises(PoolClosed):  # a call that raced the shutdown: fitted here
            pool.call(len, ())
    finally:
        fit_pool.shutdown()
        fit_pool.configure(configured)
        fit_pool._broken = broken
