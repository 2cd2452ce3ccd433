"""The synchronous client, :class:`Client`."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import httpx

from . import _calls as calls
from ._core import (
    DEFAULT_TIMEOUT,
    BaseClient,
    RetryPolicy,
    read_spec_file,
    request_options,
    study_spec,
)
from ._datasets import prepare_upload
from .handles import Heartbeat, Study
from .models import DatasetData

T = TypeVar("T")


class Client(BaseClient):
    """A connection to a tuneforge server.

    ``url`` and ``api_key`` default to ``TUNEFORGE_URL`` / ``TUNEFORGE_API_KEY``.
    With neither a URL nor ``TUNEFORGE_URL`` the client starts an embedded
    server on ``./tuneforge.db`` and stops it on :meth:`close`. The key is sent
    as ``Authorization: Bearer <key>``.

    Safe calls (reads, suggest with this client's ``client_id``, reports,
    heartbeats, complete, fail) are retried with exponential backoff for up
    to ``retry.total_seconds``. ``transport`` replaces the network, e.g. to
    drive an app in-process in tests.

    ``report_delay``: the longest, in seconds, a trial holds back reports at steps where
    the study's early-stopping rule cannot decide anything (the measurement reply's
    ``next_decision_step``; see ``Trial.report``); ``0`` sends every report at once.
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        client_id: str | None = None,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        report_delay: float = 2.0,
    ) -> None:
        super().__init__(
            url,
            api_key,
            client_id=client_id,
            timeout=timeout,
            retry=retry or RetryPolicy(),
            in_process=transport is not None,
            report_delay=report_delay,
        )
        self._http = httpx.Client(transport=transport, **self._http_options())
        self._heartbeats: set[Heartbeat] = set()

    def _request(self, call: calls.Call[T]) -> T:
        """Send ``call``, retrying per the policy; the parsed reply or a TuneforgeError."""
        attempts = self._attempts(call)
        while True:
            outcome = self._send(call)
            delay = attempts.next_delay(outcome)
            if delay is None:
                return self._result(call, outcome, attempts)
            time.sleep(delay)

    def _send(self, call: calls.Call[Any]) -> httpx.Response | httpx.TransportError:
        try:
            return self._http.request(call.method, call.path, **request_options(call))
        except httpx.TransportError as exc:
            return exc

    def create_study(
        self,
        spec: Mapping[str, Any] | None = None,
        /,
        *,
        name: str | None = None,
        parameters: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None = None,
        metrics: Sequence[Mapping[str, Any]] | Mapping[str, str] | None = None,
        if_exists: str | None = None,
        **fields: Any,
    ) -> Study:
        """Create a study from a spec dict and/or keywords (docs/api.md, "Studies").

        ``if_exists="return"`` returns the existing study of that name when its
        spec is identical (otherwise :class:`~tuneforge.Conflict`).
        """
        body = study_spec(
            spec, {"name": name, "parameters": parameters, "metrics": metrics, **fields}
        )
        return Study(self, self._request(calls.create_study(body, if_exists)))

    def create_study_from_file(
        self, path: str | os.PathLike[str], *, if_exists: str | None = None
    ) -> Study:
        """Create a study from a ``.yaml`` / ``.yml`` / ``.json`` spec file."""
        return self.create_study(read_spec_file(path), if_exists=if_exists)

    def get_study(self, id_or_name: int | str) -> Study:
        """The study with this id (an int) or name (a str); NotFound when there is none."""
        if isinstance(id_or_name, int):
            return Study(self, self._request(calls.get_study(id_or_name)))
        page = self._request(calls.list_studies(name=id_or_name))
        return Study(self, self._only(page, id_or_name))

    def list_studies(self, state: str | None = None) -> list[Study]:
        """Every study (or those in ``state``: active | paused | completed), oldest first."""
        studies: list[Study] = []
        token: str | None = None
        while True:
            page = self._request(calls.list_studies(state=state, page_token=token))
            studies += [Study(self, s) for s in page.studies]
            token = page.next_page_token
            if token is None:
                return studies

    def start_nested_cv(
        self, spec: Mapping[str, Any], outer_splits: int = 5, *, seed: int = 0, run: bool = True
    ) -> dict[str, Any]:
        """Nested cross-validation: one inner study per outer fold (started on the workers
        when ``run``); returns the summary of ``GET /nested-cv/{name}``."""
        return self._request(calls.start_nested_cv(spec, outer_splits, seed, run))

    def nested_cv_summary(self, group: str) -> dict[str, Any]:
        """Each outer fold's study, chosen configuration and held-out score; mean and std."""
        return self._request(calls.nested_cv_summary(group))

    def upload_dataset(
        self,
        data: Any,
        *,
        name: str | None = None,
        target: str | None = None,
        groups: str | None = None,
        format: str | None = None,
    ) -> DatasetData:
        """Upload a table for managed studies: a CSV / Parquet file path or a pandas
        DataFrame (sent as Parquet). ``name`` defaults to the file's stem; ``target`` and
        ``groups`` are the columns studies use unless they name others. A study then
        trains on it with ``objective.dataset: {"source": "uploaded", "name": ...}``."""
        upload = prepare_upload(data, name=name, target=target, groups=groups, format=format)
        return self._request(calls.upload_dataset(upload.content, upload.params))

    def list_datasets(self) -> list[DatasetData]:
        """Every uploaded dataset of the project, oldest first."""
        found: list[DatasetData] = []
        token: str | None = None
        while True:
            page = self._request(calls.list_datasets(page_token=token))
            found += page.datasets
            token = page.next_page_token
            if token is None:
                return found

    def get_dataset(self, id_or_name: int | str) -> DatasetData:
        """The dataset with this id (an int) or name (a str); NotFound when there is none."""
        if isinstance(id_or_name, int):
            return self._request(calls.get_dataset(id_or_name))
        page = self._request(calls.list_datasets(name=id_or_name))
        return self._only_dataset(page, id_or_name)

    def download_dataset(self, dataset_id: int) -> bytes:
        """The bytes of an uploaded dataset, as uploaded."""
        return (self._request(calls.download_dataset(dataset_id))).content

    def delete_dataset(self, id_or_name: int | str) -> None:
        """Delete a dataset no unfinished study uses (Conflict names those that do)."""
        dataset = self.get_dataset(id_or_name)
        self._request(calls.delete_dataset(dataset.id))

    def close(self) -> None:
        """Stop heartbeats, close connections and stop the embedded server if any."""
        for beat in list(self._heartbeats):
            beat.stop()
        self._heartbeats.clear()
        self._http.close()
        self._stop_server()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
