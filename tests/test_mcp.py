"""The app's MCP server as an MCP client sees it: every tool parameter described, naming where its values come
from, and every tool's result JSON text (an object), while gradio_client callers get the same answers as before.
Driven with the `mcp` package's client (gradio[mcp] installs it) over streamable HTTP at /gradio_api/mcp/."""

import asyncio
import json
import math

import pytest
from gradio_client import Client
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from tiny import copy_run

from distill.data import LABELS
from distill.inference import MAX_LENGTH_RANGE, MAX_TEXT_CHARS, TEMPERATURE_RANGE

TOOLS = {"chat", "comparison", "models", "list_runs"}


@pytest.fixture(scope="module")
def app_with_run(app_server, good_run):
    """The live app with a finished run of the tiny teacher to chat with (the committed runs keep no models)."""
    url, results = app_server
    if not (results / "mcp-run").exists():
        copy_run(good_run, results, "mcp-run")
    return url


def as_json(result) -> dict:
    """A tool's answer: one text content, a JSON object."""
    assert not result.isError, result.content
    [content] = result.content
    assert content.type == "text"
    value = json.loads(content.text)  # a Python repr (single quotes, False, None) fails here
    assert isinstance(value, dict), content.text
    return value


async def mcp_session(url: str, use):
    """Open an MCP session on the app, as an MCP client does, and hand it to `use`."""
    async with (
        streamable_http_client(url + "gradio_api/mcp/") as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        return await use(session)


def test_every_tool_parameter_says_what_it_takes_and_where_its_values_come_from(app_with_run):
    async def list_tools(session):
        return (await session.list_tools()).tools

    tools = {tool.name: tool for tool in asyncio.run(mcp_session(app_with_run, list_tools))}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool.description, tool.name
        for name, parameter in tool.inputSchema.get("properties", {}).items():
            assert parameter.get("description", "").strip(), f"{tool.name}.{name} has no description"
    chat = tools["chat"].inputSchema["properties"]
    assert "`models` tool" in chat["model"]["description"]
    assert f"{TEMPERATURE_RANGE[0]:g} to {TEMPERATURE_RANGE[1]:g}" in chat["temperature"]["description"]
    assert f"{MAX_LENGTH_RANGE[0]} to {MAX_LENGTH_RANGE[1]}" in chat["max_length"]["description"]
    assert f"{MAX_TEXT_CHARS:,}" in chat["query"]["description"]
    comparison = tools["comparison"].inputSchema["properties"]
    assert "`list_runs` tool" in comparison["run"]["description"]
    assert "strateg" in comparison["ensemble"]["description"]
    assert "`comparison` tool" in tools["list_runs"].description and "`chat` tool" in tools["models"].description


def test_every_tool_answers_a_json_object(app_with_run):
    async def call_every_tool(session):
        answers = {
            "list_runs": as_json(await session.call_tool("list_runs", {})),
            "models": as_json(await session.call_tool("models", {})),
            "comparison": as_json(await session.call_tool("comparison", {"run": "reference"})),
            "ensemble": as_json(
                await session.call_tool("comparison", {"run": "mcp-run", "ensemble": ["top_k", "even"]})
            ),
        }
        model = next(m for m in answers["models"]["result"] if m.startswith("mcp-run/"))
        answers["chat"] = as_json(
            await session.call_tool(
                "chat",
                {"model": model, "query": "A dog runs.", "context": "An animal moves.", "every_model": True},
            )
        )
        answers["refused"] = await session.call_tool("chat", {"model": "no-such-run/x", "query": "A dog runs."})
        return answers

    answers = asyncio.run(mcp_session(app_with_run, call_every_tool))

    runs = {r["run"]: r for r in answers["list_runs"]["result"]}
    assert runs["reference"]["state"] == "completed", "the committed run"
    assert runs["mcp-run"]["state"] == "completed"

    models = answers["models"]["result"]
    assert "mcp-run/top_k-seed0" in models and "mcp-run/ensemble" in models
    assert all(isinstance(m, str) and m.count("/") == 1 for m in models)

    chat = answers["chat"]
    assert chat["model"].startswith("mcp-run/")
    assert chat["label"] in LABELS and set(chat["probabilities"]) == set(LABELS)
    assert math.isclose(sum(chat["probabilities"].values()), 1.0, abs_tol=1e-4)
    assert chat["used_context"] is True and isinstance(chat["truncated"], bool), "JSON true/false, not True/False"
    assert {a["model"] for a in chat["answers"]} >= {"mcp-run/top_k-seed0", "mcp-run/even-seed0"}
    assert answers["refused"].isError, "a refusal is an MCP error, not an answer"
    refusal = answers["refused"].content[0].text  # its one line as the app words it, not a Python repr
    assert refusal.startswith("no run named 'no-such-run'") and not refusal.startswith(("'", '"')), refusal

    comparison = answers["comparison"]
    assert comparison["run"] == "reference" and comparison["table"][0]["strategy"] == "teacher"
    assert len({row["strategy"] for row in comparison["table"]}) > 2 and comparison["curves"]
    strategies = [row["strategy"] for row in answers["ensemble"]["table"]]
    assert strategies[:3] == ["teacher", "top_k", "even"] and len(strategies) > 3, "the ensemble's rows"

    # gradio_client callers get what they always did: a bare list for the listings, the same objects.
    client = Client(app_with_run, verbose=False)
    assert client.predict(api_name="/models") == models
    assert [r["run"] for r in client.predict(api_name="/list_runs")] == list(runs)
    assert client.predict("reference", api_name="/comparison") == comparison
