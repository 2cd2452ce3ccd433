"""What the progress display says: a resumed study counts against its whole budget, a
finished study says so with its best value, and the CLI's ``--server`` view (``follow``)
draws a bar with the best value. rich writes to stderr; these tests read it back."""

from __future__ import annotations

import re
import threading

import pytest

import tuneforge
from tests.conftest import LiveServer
from tests.sdk import objectives
from tests.sdk.conftest import float_study
from tuneforge.cli_run import follow


@pytest.fixture
def client(sdk_live: LiveServer, monkeypatch: pytest.MonkeyPatch) -> tuneforge.Client:
    monkeypatch.setenv("COLUMNS", "200")  # rich's width when stderr is not a terminal
    with tuneforge.Client(sdk_live.url) as c:
        yield c


def test_a_resumed_study_counts_its_earlier_trials(
    client: tuneforge.Client, name: str, capfd: pytest.CaptureFixture[str]
) -> None:
    study = client.create_study(float_study(name, max_trials=3))
    study.optimize(objectives.quadratic, progress=False)
    assert capfd.readouterr().err == ""  # progress=False: nothing at all
    study.update(max_trials=5)
    result = study.optimize(objectives.quadratic, progress=True)
    err = capfd.readouterr().err
    assert f"resuming study {name!r}: 3 of 5 trials done" in err
    assert re.search(r"\b5/5\b", err) and "0/2" not in err
    assert result.n_completed == 2


def test_rerunning_a_finished_study_says_it_is_finished_with_its_best(
    client: tuneforge.Client, name: str, capfd: pytest.CaptureFixture[str]
) -> None:
    study = client.create_study(float_study(name, max_trials=2))
    study.optimize(objectives.quadratic, progress=False)
    best = study.refresh().best()
    assert best is not None
    result = study.optimize(objectives.quadratic, progress=True)
    err = capfd.readouterr().err
    assert result.n_trials == 0 and result.best is not None
    assert result.best.number == best.number
    expected = (
        f"study {name!r} is finished (max_trials): 2 of 2 trials done; "
        f"best loss {best.values['loss']:.6g} (trial {best.number})"
    )
    assert expected in err and "0/0" not in err


def test_following_a_server_study_shows_a_bar_with_the_best_value(
    client: tuneforge.Client, name: str, capfd: pytest.CaptureFixture[str]
) -> None:
    """The view of ``tuneforge run --server``: trials finished by someone else."""
    study = client.create_study(float_study(name, max_trials=3))
    values = [4.0, 1.5, 2.5]

    def work() -> None:
        with tuneforge.Client(client.url) as other:
            handle = other.get_study(study.id)
            for value in values:
                handle.suggest_one().complete(loss=value)

    worker = threading.Thread(target=work)
    worker.start()
    follow(study, timeout=60, progress=True)
    worker.join()
    err = capfd.readouterr().err
    assert re.search(r"\b3/3\b", err) and "best 1.5" in err
