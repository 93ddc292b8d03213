"""NCAP with the official `a2a-sdk` 1.x client: send, stream, get, list, cancel, resubscribe,
multi-turn, push notifications."""

import asyncio
import uuid

import httpx
import pytest
from a2a.client import A2ACardResolver, ClientConfig, create_client
from a2a.types import (
    AuthenticationInfo,
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    TaskPushNotificationConfig,
    TaskState,
)
from google.protobuf import json_format

from conftest import AUTH

pytestmark = pytest.mark.asyncio(loop_scope="session")


def user_message(text, task_id=None, context_id=None):
    message = Message(message_id=str(uuid.uuid4()), role=Role.ROLE_USER, parts=[Part(text=text)])
    if task_id:
        message.task_id = task_id
    if context_id:
        message.context_id = context_id
    return message


async def send(client, message):
    responses = [r async for r in client.send_message(SendMessageRequest(message=message))]
    assert len(responses) == 1
    assert responses[0].HasField("task")
    return responses[0].task


async def agent(platform, name, **config):
    config.setdefault("streaming", False)
    config.setdefault("httpx_client", httpx.AsyncClient(headers=AUTH))
    return await create_client(f"{platform}/a2a/default/{name}", ClientConfig(**config))


async def test_card_describes_the_agent(platform):
    async with httpx.AsyncClient(headers=AUTH) as http:
        card = await A2ACardResolver(http, f"{platform}/a2a/default/echo").get_agent_card()
    assert card.name == "echo"
    assert [s.id for s in card.skills] == ["echo"]
    assert any(i.protocol_version == "1.0" for i in card.supported_interfaces)


async def test_send_get_list_cancel(platform):
    client = await agent(platform, "echo")
    context = str(uuid.uuid4())
    sent = user_message("hello over A2A", context_id=context)
    task = await send(client, sent)
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert task.context_id == context
    assert task.status.message.parts[0].text == "echo: hello over A2A"
    assert [m.role for m in task.history] == [Role.ROLE_USER, Role.ROLE_AGENT]
    # The caller's message keeps the id it was sent with.
    assert task.history[0].message_id == sent.message_id

    fetched = await client.get_task(GetTaskRequest(id=task.id))
    assert fetched.id == task.id and fetched.status.state == TaskState.TASK_STATE_COMPLETED

    listed = await client.list_tasks(ListTasksRequest(context_id=context))
    assert [t.id for t in listed.tasks] == [task.id]

    with pytest.raises(Exception) as refused:
        await client.cancel_task(CancelTaskRequest(id=task.id))
    assert "cancel" in str(refused.value).lower()


async def test_multi_turn_task(platform):
    client = await agent(platform, "greeter")
    first = await send(client, user_message("hi"))
    assert first.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
    assert "name" in first.status.message.parts[0].text
    second = await send(client, user_message("Ada", task_id=first.id, context_id=first.context_id))
    assert second.id == first.id
    assert second.status.state == TaskState.TASK_STATE_COMPLETED
    assert second.status.message.parts[0].text == "Nice to meet you, Ada!"
    assert len(second.history) == 4

    waiting = await send(client, user_message("hi"))
    canceled = await client.cancel_task(CancelTaskRequest(id=waiting.id))
    assert canceled.status.state == TaskState.TASK_STATE_CANCELED


async def test_streaming_send_yields_updates_then_the_reply(platform):
    client = await agent(platform, "streamer", streaming=True)
    request = SendMessageRequest(message=user_message("one two three"))
    events = [event async for event in client.send_message(request)]

    assert events[0].HasField("task")
    assert events[0].task.status.state == TaskState.TASK_STATE_WORKING
    working = [
        e.status_update.status.message.parts[0].text
        for e in events
        if e.HasField("status_update")
        and e.status_update.status.state == TaskState.TASK_STATE_WORKING
    ]
    assert working == ["thinking", "one ", "two ", "three "]
    chunks = [e.artifact_update for e in events if e.HasField("artifact_update")]
    assert [(c.append, c.last_chunk) for c in chunks] == [(False, False), (True, True)]
    assert "".join(c.artifact.parts[0].text for c in chunks) == "one two three"
    final = events[-1].status_update
    assert final.status.state == TaskState.TASK_STATE_COMPLETED
    assert final.status.message.parts[0].text == "one two three"

    # The stream and the stored task agree.
    task = await client.get_task(GetTaskRequest(id=final.task_id))
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert task.artifacts[0].parts[0].text + task.artifacts[0].parts[1].text == "one two three"


async def test_resubscribe_follows_a_running_task_until_it_is_canceled(platform):
    # `polling` sends with returnImmediately: the task comes back while it still runs.
    client = await agent(platform, "hostile", polling=True)
    task = await send(client, user_message("loop"))
    assert task.status.state == TaskState.TASK_STATE_WORKING

    streaming = await agent(platform, "hostile", streaming=True)
    updates = streaming.subscribe(SubscribeToTaskRequest(id=task.id))
    first = await anext(updates)
    assert first.task.id == task.id
    assert first.task.status.state == TaskState.TASK_STATE_WORKING

    canceled = await client.cancel_task(CancelTaskRequest(id=task.id))
    assert canceled.status.state == TaskState.TASK_STATE_CANCELED
    rest = [event async for event in updates]
    assert rest[-1].status_update.status.state == TaskState.TASK_STATE_CANCELED

    # An ended task has nothing to follow.
    with pytest.raises(Exception) as refused:
        [event async for event in streaming.subscribe(SubscribeToTaskRequest(id=task.id))]
    assert "ended" in str(refused.value)


def pushed_state(body):
    """The task state a 1.0 push notification (a `StreamResponse`) reports."""
    update = json_format.ParseDict(body, StreamResponse(), ignore_unknown_fields=False)
    if update.HasField("task"):
        return update.task.status.state
    if update.HasField("status_update"):
        return update.status_update.status.state
    return None


async def test_push_notifications_reach_webhooks_and_configs_are_managed(platform, webhook):
    # A config sent with the message (the client adds it to every send), on a task that runs
    # until it is canceled.
    inline = TaskPushNotificationConfig(id="inline", url=f"{webhook.url}/inline", token="tok-1")
    client = await agent(platform, "hostile", polling=True, push_notification_config=inline)
    task = await send(client, user_message("loop"))
    assert task.status.state == TaskState.TASK_STATE_WORKING

    # A second config created on the running task, authenticating with a bearer credential.
    created = await client.create_task_push_notification_config(
        TaskPushNotificationConfig(
            task_id=task.id,
            id="created",
            url=f"{webhook.url}/created",
            token="tok-2",
            authentication=AuthenticationInfo(scheme="Bearer", credentials="cred-2"),
        )
    )
    assert (created.task_id, created.id, created.url) == (task.id, "created", f"{webhook.url}/created")
    assert created.authentication.scheme == "Bearer"
    # Token and credentials are write-only.
    assert created.token == "" and created.authentication.credentials == ""

    canceled = await client.cancel_task(CancelTaskRequest(id=task.id))
    assert canceled.status.state == TaskState.TASK_STATE_CANCELED

    def ended(path):
        return lambda got: any(
            p == path and pushed_state(b) == TaskState.TASK_STATE_CANCELED for p, _, b in got
        )

    await webhook.wait_for(ended("/inline"))
    received = await webhook.wait_for(ended("/created"))
    inline_got = [(h, b) for p, h, b in received if p == "/inline"]
    created_got = [(h, b) for p, h, b in received if p == "/created"]
    # The inline config saw the task from the start, then its updates; the created one only
    # what came after it existed.
    assert inline_got[0][1]["task"]["id"] == task.id
    assert pushed_state(inline_got[0][1]) == TaskState.TASK_STATE_WORKING
    assert pushed_state(inline_got[-1][1]) == TaskState.TASK_STATE_CANCELED
    assert all(h["x-a2a-notification-token"] == "tok-1" for h, _ in inline_got)
    assert "authorization" not in inline_got[0][0]
    assert [pushed_state(b) for _, b in created_got] == [TaskState.TASK_STATE_CANCELED]
    headers = created_got[0][0]
    assert headers["x-a2a-notification-token"] == "tok-2"
    assert headers["authorization"] == "Bearer cred-2"

    # The configs outlive the run: get, list, delete.
    got = await client.get_task_push_notification_config(
        GetTaskPushNotificationConfigRequest(task_id=task.id, id="inline")
    )
    assert (got.id, got.url, got.token) == ("inline", f"{webhook.url}/inline", "")
    listed = await client.list_task_push_notification_configs(
        ListTaskPushNotificationConfigsRequest(task_id=task.id)
    )
    assert [c.id for c in listed.configs] == ["inline", "created"]
    await client.delete_task_push_notification_config(
        DeleteTaskPushNotificationConfigRequest(task_id=task.id, id="created")
    )
    listed = await client.list_task_push_notification_configs(
        ListTaskPushNotificationConfigsRequest(task_id=task.id)
    )
    assert [c.id for c in listed.configs] == ["inline"]
    with pytest.raises(Exception) as missing:
        await client.get_task_push_notification_config(
            GetTaskPushNotificationConfigRequest(task_id=task.id, id="created")
        )
    assert "created" in str(missing.value)

    # A config for a task that has ended is kept, and nothing is sent for it.
    before = len(webhook.received)
    late = await client.create_task_push_notification_config(
        TaskPushNotificationConfig(task_id=task.id, id="late", url=f"{webhook.url}/late")
    )
    assert late.id == "late"
    await asyncio.sleep(0.3)
    assert len(webhook.received) == before


async def test_push_configs_for_unknown_tasks_and_bad_urls_are_refused(platform):
    client = await agent(platform, "echo")
    with pytest.raises(Exception) as unknown:
        await client.list_task_push_notification_configs(
            ListTaskPushNotificationConfigsRequest(task_id=str(uuid.uuid4()))
        )
    assert "task" in str(unknown.value).lower()
    task = await send(client, user_message("hi"))
    with pytest.raises(Exception) as bad:
        await client.create_task_push_notification_config(
            TaskPushNotificationConfig(task_id=task.id, url="ftp://example.com/hook")
        )
    assert "url" in str(bad.value).lower()


async def test_without_credentials_the_client_fails_cleanly(platform):
    """The card is public (it says how to authenticate); every call needs the bearer key."""
    async with httpx.AsyncClient() as http:
        card = await A2ACardResolver(http, f"{platform}/a2a/default/echo").get_agent_card()
        assert "bearer" in card.security_schemes
        client = await create_client(
            f"{platform}/a2a/default/echo", ClientConfig(streaming=False, httpx_client=http)
        )
        with pytest.raises(Exception) as refused:
            await send(client, user_message("hi"))
        assert "401" in str(refused.value)
    wrong = {"Authorization": "Bearer nxk_not-a-key-of-this-platform-at-all"}
    async with httpx.AsyncClient(headers=wrong) as http:
        reply = await http.post(f"{platform}/a2a/default/echo", json={})
    assert reply.status_code == 401
    assert reply.headers["www-authenticate"].startswith("Bearer")
    assert reply.json()["code"] == "unauthenticated"
