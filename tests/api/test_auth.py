"""Every caller is someone: each finding of the attack on the open API, replayed over HTTP
against a real server, gets its refusal, and nothing it sent is stored or acted on."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import durable
from store import KeyStore
from tests.events.test_events import until_waiting
from tests.keys import make_key
from tests.test_cli import durable as cli
from workflows.agents import AgentSessionCompleted, SessionCompletion

from .conftest import Api
from .workflows import Decided

ROUTES = [
    ("POST", "/events", {"type": "tests/note.posted", "data": {}}),
    ("GET", "/events/anything", None),
    ("GET", "/runs/some-run/steps", None),
    ("GET", "/sessions/some-session", None),
]


def org() -> str:
    return f"org-{uuid.uuid4().hex[:8]}"


async def start_gate(api: Api, key: str) -> str:
    status, receipt = await api.call(
        "POST", "/events", {"type": "tests/gate.requested", "data": {}}, key
    )
    assert status == 202, receipt
    [run_id] = receipt["started"]
    assert api.client.events is not None
    await until_waiting(api.client, run_id)
    return str(run_id)


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
async def test_no_bad_revoked_or_expired_credential_gets_in(
    api: Api, method: str, path: str, body: object
) -> None:
    mine = org()
    revoked = await make_key(api.pool, mine, name="revoked")
    await KeyStore(api.pool).revoke(mine, "revoked")
    expired = (
        await KeyStore(api.pool).create(
            mine, "expired", ["admin"], expires_at=datetime.now(UTC) - timedelta(seconds=1)
        )
    ).secret
    forged = revoked[:-64] + "0" * 64  # a real prefix, a wrong secret
    before = await api.events()
    for key, says in [
        (None, "needs a credential"),
        ("not-a-key", "no OIDC issuer is set"),
        (forged, "not valid"),
        (revoked, "revoked or expired"),
        (expired, "revoked or expired"),
    ]:
        status, answer = await api.call(method, path, body, key)
        assert (status, says in answer["error"]) == (401, True), (key, answer)
        assert key is None or key not in answer["error"], "a credential is never echoed"
    assert await api.events() == before
    status, _ = await api.call("GET", "/healthz")
    assert status == 200, "health needs no credential"


async def test_a_revoked_key_stops_working_within_the_cache_time(api: Api) -> None:
    mine = org()
    key = await make_key(api.pool, mine, name="soon-revoked")
    assert (await api.call("GET", "/events/x", key=key))[0] == 404
    await KeyStore(api.pool).revoke(mine, "soon-revoked")
    await asyncio.sleep(0.6)  # the fixture's cache time is 0.5 s (10 s by default)
    status, answer = await api.call("GET", "/events/x", key=key)
    assert status == 401 and "revoked" in answer["error"]


async def test_a_key_without_the_scope_is_refused_and_nothing_is_stored(api: Api) -> None:
    reader = await make_key(api.pool, org(), "runs:read", name="reader")
    sender = await make_key(api.pool, org(), "events:send", name="sender")
    before = await api.events()
    note = {"type": "tests/note.posted", "data": {}}
    status, answer = await api.call("POST", "/events", note, reader)
    assert status == 403 and "key:reader lacks the scope 'events:send'" in answer["error"]
    gate = {"type": "tests/gate.requested", "data": {}}
    status, answer = await api.call("POST", "/events", gate, sender)
    assert status == 403 and "lacks the scope 'runs:start'" in answer["error"], "it starts runs"
    status, answer = await api.call("GET", "/runs/r/steps", key=sender)
    assert status == 403 and "'runs:read'" in answer["error"]
    assert await api.events() == before
    assert (await api.call("POST", "/events", note, sender))[0] == 202


async def test_only_json_bodies_are_taken_so_a_web_page_cannot_post(api: Api) -> None:
    key = await make_key(api.pool, org())
    before = await api.call("GET", "/events/x", key=key)
    count = await api.events()
    for kind in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]:
        status, answer = await api.call(
            "POST",
            "/events",
            b'{"type": "tests/note.posted", "data": {}}',
            key,
            headers={"content-type": kind},
        )
        assert status == 415 and "Content-Type: application/json" in answer["error"]
    assert before[0] == 404 and await api.events() == count


@pytest.mark.parametrize(
    "event_type",
    ["linear/issue.created", "rensei/pm.agent-session.completed", "durable/anything.sent"],
)
async def test_reserved_event_types_come_only_from_their_producers(
    api: Api, event_type: str
) -> None:
    key = await make_key(api.pool, org(), "admin", name="admin")
    before = await api.events()
    status, answer = await api.call("POST", "/events", {"type": event_type, "data": {}}, key)
    assert status == 403 and "the API refuses them" in answer["error"]
    assert await api.events() == before


async def test_a_body_naming_another_org_is_refused(api: Api) -> None:
    key = await make_key(api.pool, "org-honest")
    before = await api.events()
    body = {"type": "tests/note.posted", "data": {}, "tenancy": {"org_id": "org-victim"}}
    status, answer = await api.call("POST", "/events", body, key)
    assert status == 403 and "may not send events for org 'org-victim'" in answer["error"]
    assert await api.events() == before


async def test_event_ids_are_per_org_and_a_reused_id_with_other_content_is_409(
    api: Api,
) -> None:
    a, b = await make_key(api.pool, org()), await make_key(api.pool, org())
    same_id = f"evt-{uuid.uuid4()}"
    first = {"type": "tests/note.posted", "id": same_id, "data": {"topic": "a"}}
    other = {"type": "tests/note.posted", "id": same_id, "data": {"topic": "b"}}
    assert (await api.call("POST", "/events", first, a))[1]["duplicate"] is False
    status, receipt = await api.call("POST", "/events", other, b)
    assert (status, receipt["duplicate"], receipt["id"]) == (202, False, same_id)
    status, again = await api.call("POST", "/events", first, a)
    assert (status, again["duplicate"]) == (202, True), "the same content is a duplicate"
    status, answer = await api.call("POST", "/events", other, a)
    assert status == 409 and "already used" in answer["error"]
    status, theirs = await api.call("GET", f"/events/{same_id}", key=b)
    assert (status, theirs["data"]) == (200, {"topic": "b"}), "each org sees its own"


async def test_an_id_the_platform_will_use_cannot_be_taken_first(api: Api) -> None:
    key = await make_key(api.pool, org())
    platform_id = f"rensei/pm.agent-session.run:{uuid.uuid4()}/completed"
    squat = {"type": "tests/note.posted", "id": platform_id, "data": {}}
    assert (await api.call("POST", "/events", squat, key))[0] == 202
    completion = AgentSessionCompleted(
        id=platform_id,
        data=SessionCompletion(session_id="s-1", status="completed", summary="real"),
    )
    receipt = await api.client.send_event(completion)
    assert receipt.duplicate is False, "the platform's own event is stored, not dropped"


async def test_an_approval_from_another_org_does_not_resolve_the_run(api: Api) -> None:
    mine, theirs = org(), org()
    own = await make_key(api.pool, mine, name="ada")
    other = await make_key(api.pool, theirs, "admin", name="mallory")
    run_id = await start_gate(api, own)
    approval = {
        "type": "rensei/approval.resolved",
        "data": {"workflow_id": run_id, "decision": "approve", "by": "the CEO"},
    }
    status, answer = await api.call("POST", "/events", approval, other)
    assert status == 404 and f"no run with workflow id {run_id!r}" in answer["error"]
    assert (await api.client.get(run_id).describe()).waiting_on, "it still waits"

    status, receipt = await api.call("POST", "/events", approval, own)
    assert (status, receipt["delivered"]) == (202, [run_id])
    out: Decided = await api.client.get(run_id).result()
    assert (out.decision, out.by, out.via) == ("approve", "key:ada", "api"), "who, not the body"
    status, answer = await api.call("POST", "/events", approval, other)
    assert status == 404, "a closed run of another org is as absent as a missing one"


async def test_a_workflow_names_who_may_approve_it(api: Api) -> None:
    mine = org()
    anyone = await make_key(api.pool, mine, name="someone")
    manager = await make_key(api.pool, mine, "approve", name="release-manager")
    handle = await api.client.start(
        "tests/release-gate.run", {}, tenancy=durable.Tenancy(org_id=mine)
    )
    await until_waiting(api.client, handle.workflow_id)
    approval = {
        "type": "rensei/approval.resolved",
        "data": {"workflow_id": handle.workflow_id, "decision": "approve"},
    }
    status, answer = await api.call("POST", "/events", approval, anyone)
    assert status == 403 and "to be one of key:release-manager" in answer["error"]
    assert (await api.call("POST", "/events", approval, manager))[0] == 202
    out: Decided = await handle.result()
    assert out.by == "key:release-manager"


async def test_reads_are_of_the_callers_org_and_cross_org_reads_are_an_explicit_scope(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    mine = org()
    key = await make_key(api.pool, mine)
    admin = await make_key(api.pool, org(), "admin", name="org-admin")
    operator = await make_key(api.pool, org(), "runs:read", "cross-org:read", name="operator")
    run_id = await start_gate(api, key)
    event_id = f"evt-{uuid.uuid4()}"
    note = {"type": "tests/note.posted", "id": event_id, "data": {}}
    assert (await api.call("POST", "/events", note, key))[0] == 202
    assert (await api.call("GET", f"/events/{event_id}", key=admin))[0] == 404
    status, answer = await api.call("GET", f"/runs/{run_id}/steps?org={mine}", key=admin)
    assert status == 403 and "may read only org" in answer["error"], "admin is not an operator"
    with caplog.at_level(logging.WARNING, logger="durable.api.auth"):
        status, _ = await api.call("GET", f"/runs/{run_id}/steps?org={mine}", key=operator)
    assert status == 200
    [record] = [r for r in caplog.records if r.getMessage() == "cross-org read"]
    assert (record.principal, record.org) == ("key:operator", mine)  # type: ignore[attr-defined]
    assert operator not in caplog.text and key not in caplog.text
    await api.client.get(run_id).cancel("test over")


async def test_the_cli_sends_approvals_with_a_key_from_the_environment(
    api: Api, tmp_path: Path
) -> None:
    mine = org()
    key = await make_key(api.pool, mine, name="ci-approver")
    run_id = await start_gate(api, key)
    env = {
        "DURABLE_API_KEY": key,
        "DURABLE_API_URL": api.address,
        "DURABLE_DATA_DIR": str(tmp_path),
    }
    code, out, err = await cli("approve", run_id, "--by", "someone else", env=env)
    assert code == 0, err
    assert json.loads(out)["delivered"] == [run_id]
    decided: Decided = await api.client.get(run_id).result()
    assert (decided.by, decided.via) == ("key:ci-approver", "api"), "the key, not --by"
    history = await api.client.get(run_id).temporal.fetch_history()
    assert key not in history.to_json(), "the secret is not in the run's history"
    wrong = key[:-1] + ("1" if key.endswith("0") else "0")
    code, _, err = await cli("approve", run_id, env={**env, "DURABLE_API_KEY": wrong})
    assert code == 2 and "the API refused it (401)" in err and key[:-8] not in err


async def test_keys_are_made_listed_and_revoked_with_the_cli(
    api: Api, database_url: str, tmp_path: Path
) -> None:
    mine = org()
    env = {"DATABASE_URL": database_url, "DURABLE_DATA_DIR": str(tmp_path)}
    code, out, err = await cli(
        "keys", "create", "--org", mine, "--name", "bot", "--scope", "runs:read,approve", env=env
    )
    assert code == 0, err
    secret = out.strip()
    assert secret.startswith(f"dk_{mine}_") and "shown only now" in err
    assert (await api.call("GET", "/events/x", key=secret))[0] == 404
    code, out, _ = await cli("keys", "list", "--org", mine, "--json", env=env)
    [listed] = json.loads(out)
    assert (listed["name"], listed["scopes"], listed["revoked_at"]) == (
        "bot",
        ["approve", "runs:read"],
        None,
    )
    assert secret not in out and listed["prefix"] == secret.rsplit("_", 1)[0]
    bad = await cli("keys", "create", "--org", mine, "--name", "x", "--scope", "root", env=env)
    assert bad[0] == 2 and "unknown scope(s) root" in bad[2]
    taken = await cli(
        "keys", "create", "--org", mine, "--name", "bot", "--scope", "approve", env=env
    )
    assert taken[0] == 2 and "already has a key named 'bot'" in taken[2]
    code, out, _ = await cli("keys", "revoke", "--org", mine, "bot", env=env)
    assert code == 0 and "revoked" in out
    await asyncio.sleep(0.6)
    assert (await api.call("GET", "/events/x", key=secret))[0] == 401
    missing = await cli("keys", "revoke", "--org", mine, "nobody", env=env)
    assert missing[0] == 3

    # A key named like another's prefix: revoking by that prefix revokes that one key only.
    keys = KeyStore(api.pool)
    target = await keys.create(mine, "target", ["runs:read"])
    await keys.create(mine, target.key.prefix, ["runs:read"])
    await keys.create(mine, "old", ["runs:read"], expires_at=datetime.now(UTC) - timedelta(1))
    code, out, _ = await cli("keys", "revoke", "--org", mine, target.key.prefix, env=env)
    assert code == 0 and "(target)" in out
    code, out, _ = await cli("keys", "list", "--org", mine, env=env)
    states = {line.split()[1]: line.split()[2] for line in out.splitlines()}
    assert states == {
        "bot": "revoked",
        "target": "revoked",
        target.key.prefix: "active",
        "old": "expired",
    }
