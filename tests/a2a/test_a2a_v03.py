"""NCAP with the official `a2a-sdk` 0.3.x client: the 0.3 method names (no A2A-Version header)."""

import uuid

import httpx
import pytest
from a2a.client import A2ACardResolver
from a2a.client.legacy import A2AClient
from a2a.types import (
    CancelTaskRequest,
    GetTaskRequest,
    Message,
    MessageSendParams,
    Part,
    Role,
    SendMessageRequest,
    SendStreamingMessageRequest,
    TaskIdParams,
    TaskQueryParams,
    TaskState,
    TextPart,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


def user_message(text, task_id=None, context_id=None):
    return Message(
        message_id=str(uuid.uuid4()),
        role=Role.user,
        parts=[Part(root=TextPart(text=text))],
        task_id=task_id,
        context_id=context_id,
    )


async def test_send_get_cancel_and_multi_turn_with_0_3_names(platform):
    async with httpx.AsyncClient() as http:
        url = f"{platform}/a2a/default/greeter"
        card = await A2ACardResolver(http, url).get_agent_card()
        assert card.name == "greeter"
        client = A2AClient(http, agent_card=card)

        sent = await client.send_message(
            SendMessageRequest(id="1", params=MessageSendParams(message=user_message("hi")))
        )
        task = sent.root.result
        assert task.status.state == TaskState.input_required

        answered = await client.send_message(
            SendMessageRequest(
                id="2",
                params=MessageSendParams(
                    message=user_message("Grace", task_id=task.id, context_id=task.context_id)
                ),
            )
        )
        done = answered.root.result
        assert done.status.state == TaskState.completed
        assert done.status.message.parts[0].root.text == "Nice to meet you, Grace!"

        fetched = await client.get_task(GetTaskRequest(id="3", params=TaskQueryParams(id=task.id)))
        assert fetched.root.result.status.state == TaskState.completed

        refused = await client.cancel_task(CancelTaskRequest(id="4", params=TaskIdParams(id=task.id)))
        assert refused.root.error.code == -32002


async def test_message_stream_with_0_3_names(platform):
    async with httpx.AsyncClient() as http:
        url = f"{platform}/a2a/default/streamer"
        card = await A2ACardResolver(http, url).get_agent_card()
        assert card.capabilities.streaming
        client = A2AClient(http, agent_card=card)
        request = SendStreamingMessageRequest(
            id="1", params=MessageSendParams(message=user_message("a b"))
        )
        events = [response.root.result async for response in client.send_message_streaming(request)]

    assert events[0].kind == "task"
    kinds = [event.kind for event in events]
    assert kinds.count("artifact-update") == 2
    assert [e.final for e in events if e.kind == "status-update"][-1] is True
    assert events[-1].status.state == TaskState.completed
    assert events[-1].status.message.parts[0].root.text == "a b"
