"""NCAP with the official `a2a-sdk` 0.3.x client: the 0.3 method names (no A2A-Version header)."""

import uuid

import httpx
import pytest
from a2a.client import A2ACardResolver
from a2a.client.legacy import A2AClient
from a2a.types import (
    CancelTaskRequest,
    GetTaskPushNotificationConfigParams,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    Message,
    MessageSendConfiguration,
    MessageSendParams,
    Part,
    PushNotificationAuthenticationInfo,
    PushNotificationConfig,
    Role,
    SendMessageRequest,
    SendStreamingMessageRequest,
    SetTaskPushNotificationConfigRequest,
    Task,
    TaskIdParams,
    TaskPushNotificationConfig,
    TaskQueryParams,
    TaskState,
    TextPart,
)

from conftest import AUTH

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
    async with httpx.AsyncClient(headers=AUTH) as http:
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
    async with httpx.AsyncClient(headers=AUTH) as http:
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


async def test_push_notifications_send_the_0_3_task_when_it_ends(platform, webhook):
    async with httpx.AsyncClient(headers=AUTH) as http:
        url = f"{platform}/a2a/default/hostile"
        client = A2AClient(http, agent_card=await A2ACardResolver(http, url).get_agent_card())
        configuration = MessageSendConfiguration(
            blocking=False,
            push_notification_config=PushNotificationConfig(
                id="inline", url=f"{webhook.url}/inline", token="tok-03"
            ),
        )
        sent = await client.send_message(
            SendMessageRequest(
                id="1",
                params=MessageSendParams(message=user_message("loop"), configuration=configuration),
            )
        )
        task = sent.root.result
        assert task.status.state == TaskState.working

        set_reply = await client.set_task_callback(
            SetTaskPushNotificationConfigRequest(
                id="2",
                params=TaskPushNotificationConfig(
                    task_id=task.id,
                    push_notification_config=PushNotificationConfig(
                        id="set",
                        url=f"{webhook.url}/set",
                        authentication=PushNotificationAuthenticationInfo(
                            schemes=["Bearer"], credentials="cred-03"
                        ),
                    ),
                ),
            )
        )
        stored = set_reply.root.result
        assert stored.push_notification_config.id == "set"
        assert stored.push_notification_config.authentication.schemes == ["Bearer"]
        assert stored.push_notification_config.authentication.credentials is None

        await client.cancel_task(CancelTaskRequest(id="3", params=TaskIdParams(id=task.id)))
        received = await webhook.wait_for(lambda got: {p for p, _, _ in got} >= {"/inline", "/set"})
        for path, headers, body in received:
            pushed = Task.model_validate(body)
            assert (pushed.id, pushed.status.state) == (task.id, TaskState.canceled), path
        by_path = {path: headers for path, headers, _ in received}
        assert by_path["/inline"]["x-a2a-notification-token"] == "tok-03"
        assert by_path["/set"]["authorization"] == "Bearer cred-03"

        got = await client.get_task_callback(
            GetTaskPushNotificationConfigRequest(
                id="4",
                params=GetTaskPushNotificationConfigParams(
                    id=task.id, push_notification_config_id="set"
                ),
            )
        )
        assert got.root.result.push_notification_config.url == f"{webhook.url}/set"
