"""NCAP over the A2A 1.0 HTTP+JSON (REST) binding, with the official `a2a-sdk` 1.x REST client:
send, get, list, cancel, streaming send, subscribe, and the errors it maps."""

import uuid

import httpx
import pytest
from a2a.client import ClientConfig, create_client
from a2a.client.transports.rest import RestTransport
from a2a.types import (
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    SubscribeToTaskRequest,
    TaskState,
)
from a2a.utils.constants import TransportProtocol
from a2a.utils.errors import TaskNotCancelableError, TaskNotFoundError

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
    """A client that can only speak HTTP+JSON, so the card's REST interface is the one used."""
    config.setdefault("streaming", False)
    client = await create_client(
        f"{platform}/a2a/default/{name}",
        ClientConfig(
            supported_protocol_bindings=[TransportProtocol.HTTP_JSON],
            httpx_client=httpx.AsyncClient(headers=AUTH),
            **config,
        ),
    )
    assert isinstance(client._transport, RestTransport)
    return client


async def test_send_get_list_and_cancel_refusal(platform):
    client = await agent(platform, "echo")
    context = str(uuid.uuid4())
    task = await send(client, user_message("hello over REST", context_id=context))
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert task.context_id == context
    assert task.status.message.parts[0].text == "echo: hello over REST"
    assert [m.role for m in task.history] == [Role.ROLE_USER, Role.ROLE_AGENT]

    fetched = await client.get_task(GetTaskRequest(id=task.id, history_length=1))
    assert fetched.id == task.id and fetched.status.state == TaskState.TASK_STATE_COMPLETED
    assert len(fetched.history) == 1

    listed = await client.list_tasks(ListTasksRequest(context_id=context, page_size=10))
    assert [t.id for t in listed.tasks] == [task.id]
    completed = await client.list_tasks(
        ListTasksRequest(context_id=context, status=TaskState.TASK_STATE_COMPLETED)
    )
    assert [t.id for t in completed.tasks] == [task.id]

    with pytest.raises(TaskNotCancelableError):
        await client.cancel_task(CancelTaskRequest(id=task.id))


async def test_unknown_tasks_are_not_found(platform):
    client = await agent(platform, "echo")
    for missing in (str(uuid.uuid4()), "not-a-task-id"):
        with pytest.raises(TaskNotFoundError):
            await client.get_task(GetTaskRequest(id=missing))
        with pytest.raises(TaskNotFoundError):
            await client.cancel_task(CancelTaskRequest(id=missing))


async def test_multi_turn_and_cancel(platform):
    client = await agent(platform, "greeter")
    first = await send(client, user_message("hi"))
    assert first.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
    second = await send(client, user_message("Ada", task_id=first.id, context_id=first.context_id))
    assert second.id == first.id
    assert second.status.message.parts[0].text == "Nice to meet you, Ada!"

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
    assert "".join(c.artifact.parts[0].text for c in chunks) == "one two three"
    final = events[-1].status_update
    assert final.status.state == TaskState.TASK_STATE_COMPLETED
    assert final.status.message.parts[0].text == "one two three"

    task = await client.get_task(GetTaskRequest(id=final.task_id))
    assert task.status.state == TaskState.TASK_STATE_COMPLETED


async def test_subscribe_follows_a_running_task_until_it_is_canceled(platform):
    client = await agent(platform, "hostile", polling=True)
    task = await send(client, user_message("loop"))
    assert task.status.state == TaskState.TASK_STATE_WORKING

    streaming = await agent(platform, "hostile", streaming=True)
    updates = streaming.subscribe(SubscribeToTaskRequest(id=task.id))
    first = await anext(updates)
    assert first.task.id == task.id

    canceled = await client.cancel_task(CancelTaskRequest(id=task.id))
    assert canceled.status.state == TaskState.TASK_STATE_CANCELED
    rest = [event async for event in updates]
    assert rest[-1].status_update.status.state == TaskState.TASK_STATE_CANCELED

    # An ended task has nothing to follow; the refusal comes before any stream starts.
    with pytest.raises(Exception) as refused:
        [event async for event in streaming.subscribe(SubscribeToTaskRequest(id=task.id))]
    assert "ended" in str(refused.value)


async def test_errors_are_google_rpc_status(platform):
    base = f"{platform}/a2a/default/echo"
    headers = {"A2A-Version": "1.0"}
    async with httpx.AsyncClient(headers={**AUTH, **headers}) as http:
        missing = await http.get(f"{base}/tasks/{uuid.uuid4()}")
        nowhere = await http.get(f"{base}/no/such/route")
        malformed = await http.post(
            f"{base}/message:send",
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        )
        no_agent = await http.post(f"{platform}/a2a/default/nobody/message:send", json={})
    for response, status, reason in [
        (missing, 404, "TASK_NOT_FOUND"),
        (nowhere, 404, "METHOD_NOT_FOUND"),
        (malformed, 400, "INVALID_REQUEST"),
    ]:
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert error["code"] == status
        assert error["details"][0]["reason"] == reason
    # No agent to speak for: the platform's own problem.
    assert no_agent.status_code == 404
    assert no_agent.headers["content-type"] == "application/problem+json"
