"""PBT from the SDK (sync and async, live and in-process): the exploit in a report's reply is
applied for the user: ``trial.params`` take the explored values and ``load_checkpoint()``
returns the donor's state until the trial saves its own."""

from __future__ import annotations

from typing import Any

from tests.sdk.conftest import float_study


def test_an_exploit_updates_params_and_points_load_checkpoint_at_the_donor(
    sdk: Any, name: str
) -> None:
    study = sdk.create_study(
        float_study(
            name,
            early_stopping={"rule": "pbt", "population": 4, "interval": 2, "quantile": 0.25},
        )
    )
    members = study.suggest(6)
    assert len(members) == 4  # the population, no more
    for t in members:  # the loss is |x|: the member nearest 0 is best
        t.report(1, loss=abs(t.params["x"]))
        t.save_checkpoint({"owner": t.number, "epoch": 2})
    ranked = sorted(members, key=lambda t: abs(t.params["x"]))
    for t in ranked[:3]:
        assert not t.report(2, loss=abs(t.params["x"]))
        assert t.action is None
    worst = ranked[-1]
    before = dict(worst.params)
    assert not worst.report(2, loss=abs(worst.params["x"]))
    action = worst.action
    assert action is not None and action["type"] == "exploit"
    assert action["from_trial"] == ranked[0].number and action["step"] == 2
    assert worst.params == action["params"] != before
    assert worst.load_checkpoint() == {"owner": ranked[0].number, "epoch": 2}
    worst.save_checkpoint({"owner": worst.number, "epoch": 3})
    assert worst.load_checkpoint() == {"owner": worst.number, "epoch": 3}  # its own again
    assert worst.refresh().params == action["params"]
    assert worst.data.metadata["pbt_history"][0]["from_trial"] == ranked[0].number
    worst.report(3, loss=0.5)
    assert worst.action is None
