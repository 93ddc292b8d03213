"""NCAP with the official `a2a-sdk` 1.x client: send, stream, get, list, cancel, resubscribe,
multi-turn."""

import uuid

import httpx
import pytest
from a2a.client import A2ACardResolver, ClientConfig, create_client
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
    return await create_client(f"{platform}/a2a/default/{name}", ClientConfig(**config))


async def test_card_describes_the_agent(platform):
    async with httpx.AsyncClient() as http:
        card = await A2ACardResolver(http, f"{platform}/a2a/default/echo").get_agent_card()
    assert card.name == "echo"
    assert [s.id for s in card.skills] == ["echo"]
    assert any(i.protocol_version == "1.0" for i in card.supported_interfaces)


async def test_send_get_list_cancel(platform):
    client = await agent(platform, "echo")
    context = str(uuid.uuid4())
    task = await send(client, user_message("hello over A2A", context_id=context))
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert task.context_id == context
    assert task.status.message.parts[0].text == "echo: hello over A2A"
    assert [m.role for m in task.history] == [Role.ROLE_USER, Role.ROLE_AGENT]

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
