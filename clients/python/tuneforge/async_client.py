"""The asyncio client, :class:`AsyncClient`: the same calls as :class:`~tuneforge.Client`."""

from __future__ import annotations

import asyncio
import os
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
from .async_handles import AsyncHeartbeat, AsyncStudy
from .models import DatasetData

T = TypeVar("T")


class AsyncClient(BaseClient):
    """A connection to a tuneforge server for asyncio code.

    Same configuration, retries and embedded mode as :class:`~tuneforge.Client`;
    ``transport`` takes an ``httpx.AsyncBaseTransport`` such as
    ``httpx.ASGITransport(app=create_app(settings))``.
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        client_id: str | None = None,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
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
        self._http = httpx.AsyncClient(transport=transport, **self._http_options())
        self._heartbeats: set[AsyncHeartbeat] = set()

    async def _request(self, call: calls.Call[T]) -> T:
        """Send ``call``, retrying per the policy; the parsed reply or a TuneforgeError."""
        attempts = self._attempts(call)
        while True:
            outcome = await self._send(call)
            delay = attempts.next_delay(outcome)
            if delay is None:
                return self._result(call, outcome, attempts)
            await asyncio.sleep(delay)

    async def _send(self, call: calls.Call[Any]) -> httpx.Response | httpx.TransportError:
        try:
            return await self._http.request(call.method, call.path, **request_options(call))
        except httpx.TransportError as exc:
            return exc

    async def create_study(
        self,
        spec: Mapping[str, Any] | None = None,
        /,
        *,
        name: str | None = None,
        parameters: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None = None,
        metrics: Sequence[Mapping[str, Any]] | Mapping[str, str] | None = None,
        if_exists: str | None = None,
        **fields: Any,
    ) -> AsyncStudy:
        """Create a study from a spec dict and/or keywords; see ``Client.create_study``."""
        body = study_spec(
            spec, {"name": name, "parameters": parameters, "metrics": metrics, **fields}
        )
        return AsyncStudy(self, await self._request(calls.create_study(body, if_exists)))

    async def create_study_from_file(
        self, path: str | os.PathLike[str], *, if_exists: str | None = None
    ) -> AsyncStudy:
        """Create a study from a ``.yaml`` / ``.yml`` / ``.json`` spec file."""
        return await self.create_study(read_spec_file(path), if_exists=if_exists)

    async def get_study(self, id_or_name: int | str) -> AsyncStudy:
        """The study with this id (an int) or name (a str); NotFound when there is none."""
        if isinstance(id_or_name, int):
            return AsyncStudy(self, await self._request(calls.get_study(id_or_name)))
        page = await self._request(calls.list_studies(name=id_or_name))
        return AsyncStudy(self, self._only(page, id_or_name))

    async def list_studies(self, state: str | None = None) -> list[AsyncStudy]:
        """Every study (or those in ``state``: active | paused | completed), oldest first."""
        studies: list[AsyncStudy] = []
        token: str | None = None
        while True:
            page = await self._request(calls.list_studies(state=state, page_token=token))
            studies += [AsyncStudy(self, s) for s in page.studies]
            token = page.next_page_token
            if token is None:
                return studies

    async def upload_dataset(
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
        return await self._request(calls.upload_dataset(upload.content, upload.params))

    async def list_datasets(self) -> list[DatasetData]:
        """Every uploaded dataset of the project, oldest first."""
        found: list[DatasetData] = []
        token: str | None = None
        while True:
            page = await self._request(calls.list_datasets(page_token=token))
            found += page.datasets
            token = page.next_page_token
            if token is None:
                return found

    async def get_dataset(self, id_or_name: int | str) -> DatasetData:
        """The dataset with this id (an int) or name (a str); NotFound when there is none."""
        if isinstance(id_or_name, int):
            return await self._request(calls.get_dataset(id_or_name))
        page = await self._request(calls.list_datasets(name=id_or_name))
        return self._only_dataset(page, id_or_name)

    async def download_dataset(self, dataset_id: int) -> bytes:
        """The bytes of an uploaded dataset, as uploaded."""
        return (await self._request(calls.download_dataset(dataset_id))).content

    async def delete_dataset(self, id_or_name: int | str) -> None:
        """Delete a dataset no unfinished study uses (Conflict names those that do)."""
        dataset = await self.get_dataset(id_or_name)
        await self._request(calls.delete_dataset(dataset.id))

    async def aclose(self) -> None:
        """Stop heartbeats, close connections and stop the embedded server if any."""
        for beat in list(self._heartbeats):
            beat.stop()
        self._heartbeats.clear()
        await self._http.aclose()
        self._stop_server()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
