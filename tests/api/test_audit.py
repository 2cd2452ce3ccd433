"""The audit log through the real app on SQLite and PostgreSQL: one row per mutating
request (who, what, when, result), none for reads, GET /audit for admins, paging, and a
failed audit write never failing the request."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from tests.conftest import statements_of
from tests.specs import small_spec
from tuneforge.api.db.engine import Database
from tuneforge.api.db.models import Base
from tuneforge.api.services import keys as key_service

API = "/api/v1"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def audit_rows(db: Database) -> list[dict[str, object]]:
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM audit_log ORDER BY id")).mappings().all()
    return [dict(r) for r in rows]


def test_each_mutating_request_is_one_row_and_reads_none(client: TestClient) -> None:
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    key_service.create_project(db, "ml")
    entry, editor = key_service.create_key(db, "ml", "editor")
    _, viewer = key_service.create_key(db, "ml", "viewer")
    start = datetime.now(UTC) - timedelta(seconds=1)
    sid = client.post(f"{API}/studies", json=small_spec(), headers=bearer(editor)).json()["id"]
    trial = client.post(
        f"{API}/studies/{sid}/trials/suggest", json={"count": 1}, headers=bearer(editor)
    ).json()["trials"][0]
    client.get(f"{API}/studies/{sid}", headers=bearer(viewer))
    client.get(f"{API}/studies/{sid}/trials", headers=bearer(editor))
    client.post(
        f"{API}/studies/{sid}/trials/{trial['number']}/complete",
        json={"values": {"accuracy": 0.9}},
        headers=bearer(editor),
    )
    client.delete(f"{API}/studies/{sid}", headers=bearer(viewer))  # 403
    client.patch(f"{API}/studies/{sid}", json={"max_trials": 0}, headers=bearer(editor))  # 422
    client.post(f"{API}/studies", json=small_spec("x"))  # 401, no key
    rows = audit_rows(db)
    seen = [(r["method"], r["route"], r["status"], r["key_id"], r["study_id"]) for r in rows]
    pid = key_service.project_id_of(db, "ml")
    viewer_id = entry["id"] + 1
    assert seen == [
        ("POST", "/api/v1/studies", 201, entry["id"], None),
        ("POST", "/api/v1/studies/{study_id}/trials/suggest", 200, entry["id"], sid),
        ("POST", "/api/v1/studies/{study_id}/trials/{number}/complete", 200, entry["id"], sid),
        ("DELETE", "/api/v1/studies/{study_id}", 403, viewer_id, None),
        ("PATCH", "/api/v1/studies/{study_id}", 422, entry["id"], sid),
        ("POST", "/api/v1/studies", 401, None, None),
    ]
    assert [r["project_id"] for r in rows] == [pid] * 5 + [None]
    assert rows[2]["path"] == f"/api/v1/studies/{sid}/trials/{trial['number']}/complete"
    for r in rows:
        at = r["at"] if isinstance(r["at"], datetime) else datetime.fromisoformat(str(r["at"]))
        assert (at if at.tzinfo else at.replace(tzinfo=UTC)) >= start


def test_open_mode_rows_name_the_study_project(client: TestClient) -> None:
    sid = client.post(f"{API}/studies", json=small_spec()).json()["id"]
    client.patch(f"{API}/studies/{sid}", json={"description": "d"})
    rows = audit_rows(client.app.state.db)  # type: ignore[attr-defined]
    assert [(r["key_id"], r["status"], r["study_id"]) for r in rows] == [
        (None, 201, None),
        (None, 200, sid),
    ]
    assert rows[1]["project_id"] is not None  # the default project, from the study
    listed = client.get(f"{API}/audit").json()
    assert [e["route"] for e in listed["entries"]] == [
        "/api/v1/studies/{study_id}",
        "/api/v1/studies",
    ]


def test_get_audit_is_for_admins_of_the_project_and_pages(client: TestClient) -> None:
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    for name in ("a", "b"):
        key_service.create_project(db, name)
    keys = {(p, r): key_service.create_key(db, p, r)[1] for p in "ab" for r in ("editor", "admin")}
    for i in range(7):
        client.post(f"{API}/studies", json=small_spec(f"s{i}"), headers=bearer(keys["a", "editor"]))
    client.post(f"{API}/studies", json=small_spec("b0"), headers=bearer(keys["b", "editor"]))
    assert client.get(f"{API}/audit", headers=bearer(keys["a", "editor"])).status_code == 403
    assert client.get(f"{API}/audit").status_code == 401
    pages, token = [], None
    while True:
        params: dict[str, str | int] = {"page_size": 3}
        if token:
            params["page_token"] = token
        r = client.get(f"{API}/audit", params=params, headers=bearer(keys["a", "admin"]))
        assert r.status_code == 200, r.text
        pages.append(r.json()["entries"])
        token = r.json()["next_page_token"]
        if token is None:
            break
    assert [len(p) for p in pages] == [3, 3, 1]
    ids = [e["id"] for p in pages for e in p]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 7
    assert {e["project"] for p in pages for e in p} == {"a"}
    b = client.get(f"{API}/audit", headers=bearer(keys["b", "admin"])).json()["entries"]
    assert [(e["project"], e["status"]) for e in b] == [("b", 201)]
    bad = client.get(f"{API}/audit?page_size=0", headers=bearer(keys["a", "admin"]))
    assert bad.status_code == 422 and "page_size" in bad.text


def test_a_failed_audit_write_is_logged_and_the_request_still_succeeds(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    table = Base.metadata.tables["audit_log"]
    with db.engine.begin() as conn:
        table.drop(conn)
    try:
        with caplog.at_level(logging.ERROR, logger="tuneforge.api.audit"):
            r = client.post(f"{API}/studies", json=small_spec())
        assert r.status_code == 201, r.text
        assert "could not write the audit entry for POST /api/v1/studies" in caplog.text
        assert client.get(f"{API}/studies/{r.json()['id']}").status_code == 200
    finally:
        with db.engine.begin() as conn:
            table.create(conn)


def test_a_mutating_request_adds_exactly_one_audit_insert(client: TestClient) -> None:
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    with statements_of(db) as statements:
        client.post(f"{API}/studies", json=small_spec())
        inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT INTO AUDIT_LOG")]
        assert len(inserts) == 1, statements
        statements.clear()
        client.get(f"{API}/studies")
        assert not any("audit_log" in s for s in statements)


def test_concurrent_requests_each_get_their_row_by_group_commit(client: TestClient) -> None:
    """Requests finishing together share audit transactions; each still has its own row,
    committed before its request returns."""
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    ids: list[int] = []
    seen_before_return: list[bool] = []
    lock = threading.Lock()

    def create(k: int) -> None:
        r = client.post(f"{API}/studies", json=small_spec(f"c{k}"))
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        paths = {row["path"] for row in audit_rows(db)}
        with lock:
            ids.append(sid)
            seen_before_return.append("/api/v1/studies" in paths)

    threads = [threading.Thread(target=create, args=(k,)) for k in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    rows = [r for r in audit_rows(db) if r["route"] == "/api/v1/studies"]
    assert len(ids) == 12 and all(seen_before_return)
    assert len(rows) == 12 and all(r["status"] == 201 and r["method"] == "POST" for r in rows)


def test_a_batch_of_audit_rows_is_stored_whole_or_not_at_all(db_url: str) -> None:
    """The group writer falls back to one row at a time when a batch fails: a batch must
    never leave some of its rows behind, or the fallback would store them twice."""
    from sqlalchemy import func, select

    from tuneforge.api.db.migrate import upgrade
    from tuneforge.api.db.models import AuditRow
    from tuneforge.api.services.audit import AuditEntry, record_many

    upgrade(db_url)
    db = Database(db_url)
    good = AuditEntry(None, None, "POST", "/r", "/whole-or-none", None, 200)
    bad = AuditEntry(None, None, None, "/r", "/whole-or-none", None, 200)  # type: ignore[arg-type]
    try:
        with pytest.raises(Exception, match=r"(?i)null"):
            record_many(db, [good, bad, good])
        record_many(db, [good, good])
        with db.read() as session:
            stored = session.scalar(select(func.count()).where(AuditRow.path == "/whole-or-none"))
        assert stored == 2
    finally:
        db.dispose()
