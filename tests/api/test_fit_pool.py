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
from tuneforge.api.services import fit_pool
from tuneforge.core.algorithms import SuggestRequest

API = "/api/v1/studies"


def run_study(db_url: str, name: str, processes: int, trials: int) -> list[dict[str, Any]]:
    with make_client(db_url, reconcile_interval_seconds=0, fit_processes=processes) as client:
        spec = small_spec(name, algorithm="gp", seed=7, max_trials=trials)
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
    """``auto`` past its GP phase runs TPE: that fit stays in the server (pickling a long
    history for the child cost far more than the fit), while its GP phase, ``gp`` and
    ``ehvi`` go to the child; the other algorithms never do."""
    from tests.unit.test_gp import LOSS, floats, quadratic_like, random_history
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
