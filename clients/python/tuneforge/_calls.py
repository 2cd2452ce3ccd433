"""Every REST call of docs/api.md as a :class:`Call`: method, path, body, reply parser and
whether sending it twice is safe. The sync and async clients send these unchanged."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .models import (
    BestReply,
    Checkpoint,
    CheckpointInfo,
    DatasetData,
    DatasetPage,
    HeartbeatReply,
    ImportanceReply,
    MeasureReply,
    StudyData,
    StudyPage,
    SuggestReply,
    TrialData,
    TrialPage,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and how to read its reply.

    ``idempotent`` calls are retried after any transport error or a 408/429/5xx
    gateway reply; the others only when the request cannot have reached the
    server. ``done_if_retried`` is a status that, after a retry, means the
    first attempt already did the work (a repeated DELETE that gets 404).
    """

    method: str
    path: str
    parse: Callable[[Any], T]
    json: Any = None
    params: Mapping[str, str | int] | None = None
    idempotent: bool = True
    done_if_retried: int | None = None
    #: A binary request body (sent as ``application/octet-stream`` instead of ``json``).
    content: bytes | None = None
    #: Seconds this call may take instead of the client's timeout (large uploads).
    timeout: float | None = None
    #: The reply is binary: ``parse`` gets a :class:`RawReply`, not JSON.
    raw: bool = False


@dataclass(frozen=True)
class RawReply:
    """A binary reply: its bytes and headers (lower-case names)."""

    content: bytes
    headers: Mapping[str, str]


def _none(_: Any) -> None:
    return None


def _query(**values: str | int | None) -> dict[str, str | int]:
    return {k: v for k, v in values.items() if v is not None}


def _trial(study_id: int, number: int, verb: str = "") -> str:
    path = f"/studies/{study_id}/trials/{number}"
    return f"{path}/{verb}" if verb else path


def create_study(spec: Mapping[str, Any], if_exists: str | None) -> Call[StudyData]:
    # With if_exists=return a repeat returns the study the first attempt made.
    return Call(
        "POST",
        "/studies",
        StudyData.model_validate,
        json=dict(spec),
        params=_query(if_exists=if_exists),
        idempotent=if_exists == "return",
    )


def get_study(study_id: int) -> Call[StudyData]:
    return Call("GET", f"/studies/{study_id}", StudyData.model_validate)


def list_studies(
    *, state: str | None = None, name: str | None = None, page_token: str | None = None
) -> Call[StudyPage]:
    params = _query(state=state, name=name, page_token=page_token, page_size=100)
    return Call("GET", "/studies", StudyPage.model_validate, params=params)


def update_study(study_id: int, changes: Mapping[str, Any]) -> Call[StudyData]:
    # PATCH sets absolute values, so a repeat changes nothing.
    return Call("PATCH", f"/studies/{study_id}", StudyData.model_validate, json=dict(changes))


def delete_study(study_id: int) -> Call[None]:
    return Call("DELETE", f"/studies/{study_id}", _none, done_if_retried=404)


def run_study(study_id: int) -> Call[StudyData]:
    # Starting a managed study that already runs changes nothing.
    return Call("POST", f"/studies/{study_id}/run", StudyData.model_validate, json={})


def request_evaluation(study_id: int) -> Call[StudyData]:
    return Call("POST", f"/studies/{study_id}/evaluate", StudyData.model_validate, json={})


def store_evaluation(study_id: int, result: Mapping[str, Any]) -> Call[StudyData]:
    return Call(
        "PUT", f"/studies/{study_id}/evaluation", StudyData.model_validate, json=dict(result)
    )


def best(study_id: int) -> Call[BestReply]:
    return Call("GET", f"/studies/{study_id}/best", BestReply.model_validate)


def add_trial(
    study_id: int,
    params: Mapping[str, Any],
    values: Mapping[str, float] | None,
    metadata: Mapping[str, Any] | None,
) -> Call[TrialData]:
    # Each attempt that lands adds a trial: resent only when it cannot have arrived.
    body: dict[str, Any] = {"params": dict(params), "state": "completed" if values else "requested"}
    if values:
        body["values"] = dict(values)
    if metadata:
        body["metadata"] = dict(metadata)
    return Call(
        "POST", f"/studies/{study_id}/trials", TrialData.model_validate, json=body, idempotent=False
    )


def importance(study_id: int, objective: str | None) -> Call[ImportanceReply]:
    return Call(
        "GET",
        f"/studies/{study_id}/importance",
        ImportanceReply.model_validate,
        params=_query(objective=objective),
    )


def suggest(study_id: int, count: int, client_id: str | None) -> Call[SuggestReply]:
    # The server hands a client its own unfinished trials first: safe to repeat with an id.
    return Call(
        "POST",
        f"/studies/{study_id}/trials/suggest",
        SuggestReply.model_validate,
        json={"count": count, "client_id": client_id},
        idempotent=client_id is not None,
    )


def list_trials(
    study_id: int, *, state: str | None, page_token: str | None, page_size: int
) -> Call[TrialPage]:
    params = _query(state=state, page_token=page_token, page_size=page_size)
    return Call("GET", f"/studies/{study_id}/trials", TrialPage.model_validate, params=params)


def get_trial(study_id: int, number: int) -> Call[TrialData]:
    return Call("GET", _trial(study_id, number), TrialData.model_validate)


def measure(
    study_id: int,
    number: int,
    step: int,
    values: Mapping[str, float],
    elapsed_seconds: float | None,
    earlier: Sequence[Mapping[str, Any]] = (),
) -> Call[MeasureReply]:
    # Re-sending a step is a no-op, with or without the earlier ones held back before it.
    body: dict[str, Any] = {"step": step, "values": dict(values)}
    if elapsed_seconds is not None:
        body["elapsed_seconds"] = elapsed_seconds
    if earlier:
        body["earlier"] = [dict(m) for m in earlier]
    return Call(
        "POST", _trial(study_id, number, "measurements"), MeasureReply.model_validate, json=body
    )


def heartbeat(study_id: int, number: int) -> Call[HeartbeatReply]:
    return Call(
        "POST", _trial(study_id, number, "heartbeat"), HeartbeatReply.model_validate, json={}
    )


def complete(study_id: int, number: int, body: Mapping[str, Any]) -> Call[TrialData]:
    return Call("POST", _trial(study_id, number, "complete"), TrialData.model_validate, json=body)


def fail(study_id: int, number: int, body: Mapping[str, Any]) -> Call[TrialData]:
    return Call("POST", _trial(study_id, number, "fail"), TrialData.model_validate, json=body)


def stop(study_id: int, number: int) -> Call[TrialData]:
    return Call("POST", _trial(study_id, number, "stop"), TrialData.model_validate, json={})


def save_checkpoint(
    study_id: int, number: int, data: bytes, step: int | None
) -> Call[CheckpointInfo]:
    # PUT replaces the checkpoint: sending it twice stores the same bytes.
    return Call(
        "PUT",
        _trial(study_id, number, "checkpoint"),
        CheckpointInfo.model_validate,
        params=_query(step=step),
        content=data,
    )


def _checkpoint(reply: RawReply) -> Checkpoint:
    step = reply.headers.get("x-checkpoint-step")
    return Checkpoint(
        data=reply.content,
        step=int(step) if step is not None else None,
        sha256=reply.headers.get("x-checkpoint-sha256"),
    )


def load_checkpoint(study_id: int, number: int) -> Call[Checkpoint]:
    return Call("GET", _trial(study_id, number, "checkpoint"), _checkpoint, raw=True)


def start_nested_cv(
    spec: Mapping[str, Any], outer_splits: int, seed: int, run: bool
) -> Call[dict[str, Any]]:
    body = {"study": dict(spec), "outer_splits": outer_splits, "seed": seed, "run": run}
    return Call("POST", "/nested-cv", dict, json=body, idempotent=False)


def nested_cv_summary(group: str) -> Call[dict[str, Any]]:
    return Call("GET", f"/nested-cv/{group}", dict)


def upload_dataset(content: bytes, params: Mapping[str, str]) -> Call[DatasetData]:
    # Not idempotent: a repeat after a lost reply would find the name taken (409).
    return Call(
        "POST",
        "/datasets",
        DatasetData.model_validate,
        params=dict(params),
        content=content,
        idempotent=False,
        timeout=max(60.0, len(content) / 1_000_000),
    )


def list_datasets(*, name: str | None = None, page_token: str | None = None) -> Call[DatasetPage]:
    params = _query(name=name, page_token=page_token, page_size=100)
    return Call("GET", "/datasets", DatasetPage.model_validate, params=params)


def get_dataset(dataset_id: int) -> Call[DatasetData]:
    return Call("GET", f"/datasets/{dataset_id}", DatasetData.model_validate)


def download_dataset(dataset_id: int) -> Call[RawReply]:
    return Call("GET", f"/datasets/{dataset_id}/content", _raw, raw=True, timeout=600.0)


def _raw(reply: RawReply) -> RawReply:
    return reply


def delete_dataset(dataset_id: int) -> Call[None]:
    return Call("DELETE", f"/datasets/{dataset_id}", _none, done_if_retried=404)
