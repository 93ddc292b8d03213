"""MCP at `/mcp/{tenant}` with the official `mcp` Python client: initialize, list the agents as
tools, call them (a reply, a refusal, a question and its answer), and the error paths."""

import contextlib

import httpx
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import McpError
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.types import INVALID_PARAMS, LATEST_PROTOCOL_VERSION

from conftest import AUTH

pytestmark = pytest.mark.asyncio(loop_scope="session")


@contextlib.asynccontextmanager
async def session(platform, tenant="default"):
    async with streamable_http_client(
        f"{platform}/mcp/{tenant}", http_client=create_mcp_http_client(headers=AUTH)
    ) as (read, write, _):
        async with ClientSession(read, write) as client:
            yield client, await client.initialize()


async def test_initialize_speaks_2025_11_25_statelessly(platform):
    assert LATEST_PROTOCOL_VERSION == "2025-11-25"
    async with streamable_http_client(
        f"{platform}/mcp/default", http_client=create_mcp_http_client(headers=AUTH)
    ) as (read, write, session_id):
        async with ClientSession(read, write) as client:
            init = await client.initialize()
            assert init.protocolVersion == "2025-11-25"
            assert init.capabilities.tools is not None
            assert init.serverInfo.name == "nexuscore"
            assert "default" in init.instructions
            # Stateless: no transport session to keep.
            assert session_id() is None


async def test_tools_are_the_agents(platform):
    async with session(platform) as (client, _):
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert {"echo", "greeter"} <= set(tools)
    echo = tools["echo"]
    assert echo.title == "Echo"
    assert "Replies with the message it was sent." in echo.description
    schema = echo.inputSchema
    assert schema["type"] == "object"
    assert schema["required"] == ["message"]
    assert schema["properties"]["message"]["type"] == "string"
    assert schema["properties"]["session"]["type"] == "string"
    assert echo.meta == {"nexus/agent": "echo", "nexus/skill": "echo"}


async def test_call_returns_the_reply_and_the_task(platform):
    async with session(platform) as (client, _):
        result = await client.call_tool("echo", {"message": "hello over MCP", "session": "s-1"})
        assert not result.isError
        assert [c.text for c in result.content] == ["echo: hello over MCP"]
        assert result.meta["nexus/state"] == "completed"
        assert result.meta["nexus/session"] == "s-1"
        task_id = result.meta["nexus/taskId"]
        # The skill form of the name reaches the same agent.
        again = await client.call_tool("echo__echo", {"message": "again"})
        assert [c.text for c in again.content] == ["echo: again"]
    # The call was a durable task, visible over REST.
    async with httpx.AsyncClient(headers=AUTH) as http:
        task = (await http.get(f"{platform}/v1/tenants/default/tasks/{task_id}")).json()
    assert task["state"] == "completed"
    assert task["context_id"] == "s-1"


async def test_refused_input_is_a_tool_error(platform):
    async with session(platform) as (client, _):
        result = await client.call_tool("echo", {"message": "   "})
    assert result.isError
    assert result.meta["nexus/state"] in ("rejected", "failed")
    assert "send some text" in result.content[0].text


async def test_input_required_then_answered(platform):
    async with session(platform) as (client, _):
        asked = await client.call_tool("greeter", {"message": "hi"})
        assert not asked.isError
        assert asked.meta["nexus/state"] == "input_required"
        task_id = asked.meta["nexus/taskId"]
        texts = [c.text for c in asked.content]
        assert "What is your name?" in texts[0]
        assert task_id in texts[-1]
        answered = await client.call_tool("greeter", {"message": "Ada", "task": task_id})
        assert [c.text for c in answered.content] == ["Nice to meet you, Ada!"]
        assert answered.meta["nexus/taskId"] == task_id
        assert answered.meta["nexus/state"] == "completed"
        # The task has ended: it takes no more answers.
        with pytest.raises(McpError) as ended:
            await client.call_tool("greeter", {"message": "Bob", "task": task_id})
        assert ended.value.error.code == INVALID_PARAMS


@pytest.mark.parametrize(
    "name, arguments",
    [
        ("nobody", {"message": "hi"}),
        ("echo__nope", {"message": "hi"}),
        ("Echo", {"message": "hi"}),
        ("echo", {}),
        ("echo", {"message": 42}),
        ("echo", {"message": "hi", "sesion": "typo"}),
    ],
)
async def test_bad_calls_are_invalid_params(platform, name, arguments):
    async with session(platform) as (client, _):
        with pytest.raises(McpError) as refused:
            await client.call_tool(name, arguments)
    assert refused.value.error.code == INVALID_PARAMS


async def test_unknown_tenant_is_404(platform):
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    async with httpx.AsyncClient(headers=AUTH) as http:
        reply = await http.post(
            f"{platform}/mcp/nobody",
            json=initialize,
            headers={"Accept": "application/json, text/event-stream"},
        )
    assert reply.status_code == 404
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.json()["code"] == "not_found"
    with pytest.raises(Exception):
        async with session(platform, tenant="nobody"):
            pass


async def test_without_credentials_the_client_fails_cleanly(platform):
    """401 with a challenge naming the protected-resource metadata, which is public."""
    with pytest.raises(Exception) as refused:
        async with streamable_http_client(f"{platform}/mcp/default") as (read, write, _):
            async with ClientSession(read, write) as client:
                await client.initialize()
    assert "401" in repr(refused.value) or "Unauthorized" in repr(refused.value)
    async with httpx.AsyncClient() as http:
        reply = await http.post(
            f"{platform}/mcp/default",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Accept": "application/json, text/event-stream"},
        )
        assert reply.status_code == 401
        challenge = reply.headers["www-authenticate"]
        assert "resource_metadata=" in challenge
        metadata_url = challenge.split('resource_metadata="')[1].rstrip('"')
        metadata = (await http.get(metadata_url)).json()
    assert metadata["resource"] == f"{platform}/mcp/default"
    assert metadata["bearer_methods_supported"] == ["header"]
