"""What a visitor of the real app is told when a request is wrong: what to do, in one line, with no Python
exception text and no server path, Gradio's own refusals included."""

import json
import os
import sys

import httpx
import pytest
from gradio_client import Client

PYTHON_TEXT = ("NoneType", "expected str", "object has no attribute", "Traceback", "unexpected error")


@pytest.fixture(scope="module")
def client(app_server):
    return Client(app_server[0], verbose=False)


@pytest.mark.parametrize(
    ("api", "args", "told"),
    [
        ("/comparison", {"run": None}, "name a run"),
        ("/comparison", {"run": "x", "ensemble": "top_k"}, "ensemble must be a list"),
        ("/resume_job", {"run": None}, "name a run"),
        ("/watch_job", {"run": None}, "name a run"),
        ("/chat", {"model": None, "query": "q"}, "pick a model"),
        ("/chat", {"model": 5, "query": "q"}, "pick a model"),
    ],
)
def test_null_where_a_name_is_expected_says_what_to_do(client, api, args, told):
    with pytest.raises(Exception) as refused:  # gradio_client's AppError
        client.predict(**args, api_name=api)
    message = str(refused.value)
    assert told in message and "\n" not in message.strip()
    assert not any(text in message for text in PYTHON_TEXT), message


def test_stop_with_null_stops_nothing(client):
    assert client.predict(run=None, token=None, api_name="/stop_job") == {"stopped": False}


def with_file(api_name: str, sent: dict) -> tuple[int, list]:
    """The endpoint's function index, and its inputs with `sent` as its file input's value and nothing else."""
    app = sys.modules["app"]  # the module the app_server fixture launched
    fn = next(fn for fn in app.demo.fns.values() if fn.api_name == api_name)
    data = [sent if block.get_block_name() == "file" else None for block in fn.inputs]
    return fn._id, data


@pytest.mark.parametrize("path", ["app.py", os.path.join(os.getcwd(), "distill", "cli.py"), "/etc/passwd"])
def test_gradio_refusing_a_server_path_names_no_server_path(app_server, path):
    """A file payload outside the upload folder, to an endpoint with a file input: Gradio refuses it naming the
    absolute path (a relative one under the app's folder), as a 400, an error response and an error event."""
    sent = {"path": path, "meta": {"_type": "gradio.FileData"}}
    api = app_server[0] + "gradio_api/"
    session = {"session_hash": "visitor-paths", "trigger_id": None}
    answers = []
    with httpx.Client(timeout=60) as http:
        fn_index, data = with_file("run_job", sent)  # validated on joining the queue
        joined = http.post(api + "queue/join", json={"data": data, "fn_index": fn_index, **session})
        assert joined.status_code == 400
        answers.append(joined.json()["detail"])
        direct = http.post(api + "run/predict", json={"data": data, "fn_index": fn_index, **session})
        assert direct.status_code == 500
        answers.append(direct.json()["error"])
        fn_index, data = with_file("estimate_jobs", sent)  # no validator: refused in the queue, as an event
        http.post(api + "queue/join", json={"data": data, "fn_index": fn_index, **session}).raise_for_status()
        with http.stream("GET", api + "queue/data", params={"session_hash": "visitor-paths"}) as events:
            completed = next(line for line in events.iter_lines() if "process_completed" in line)
        answers.append(json.loads(completed.removeprefix("data: "))["output"]["error"])
    for answer in answers:
        assert "not uploaded" in answer
        assert os.getcwd() not in answer and "/work" not in answer and "/etc" not in answer, answer


GRADIO_TEXT = ("validation error for", "[type=", "pydantic", "Javascript", "object at 0x", "FileData")


def one_plain_line(answer: str, told: str) -> None:
    assert told in answer and "\n" not in answer.strip(), answer
    assert not any(text in answer for text in GRADIO_TEXT), answer


@pytest.mark.parametrize("sent", ["zzz", {"x": 1}, {"path": "/etc/passwd"}])
def test_a_file_argument_that_is_no_uploaded_file_says_what_to_do(app_server, sent):
    """Gradio refuses it with pydantic's text (a 400 to /call and queue/join, a 500 to run/predict)."""
    api = app_server[0] + "gradio_api/"
    fn_index, data = with_file("run_job", sent)
    session = {"session_hash": "visitor-file", "trigger_id": None}
    told = "must be a file uploaded with the request (gradio_client.handle_file)"
    with httpx.Client(timeout=60) as http:
        called = http.post(api + "call/run_job", json={"data": data})
        joined = http.post(api + "queue/join", json={"data": data, "fn_index": fn_index, **session})
        direct = http.post(api + "run/predict", json={"data": data, "fn_index": fn_index, **session})
    assert called.status_code == joined.status_code == 400 and direct.status_code == 500
    for answer in (called.json()["detail"], joined.json()["detail"], direct.json()["error"]):
        one_plain_line(answer, told)


def test_missing_arguments_say_how_many_and_where_to_look(app_server):
    api = app_server[0] + "gradio_api/"
    told = "see its parameters with client.view_api()"
    with httpx.Client(timeout=60) as http:
        refused = http.post(api + "call/run_job", json={"data": []})
        assert refused.status_code == 400
        one_plain_line(refused.json()["detail"], "this endpoint takes ")
        assert refused.json()["detail"].endswith(told) and ", got 0:" in refused.json()["detail"]
        event = http.post(api + "call/chat", json={"data": []}).raise_for_status().json()["event_id"]
        stream = http.get(api + f"call/chat/{event}").text
    error = next(line for line in stream.splitlines() if line.startswith("data:"))
    one_plain_line(json.loads(error.removeprefix("data:"))["error"], "this endpoint takes 6 arguments, got 0: " + told)


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        (OSError(""), "OSError"),  # no text: its kind, not an IndexError from an empty message
        (ValueError("   \n  "), "ValueError"),
        (RuntimeError("first\nsecond"), "first"),
        (RuntimeError("\nafter a blank line"), "after a blank line"),
        ("plain text", "plain text"),
        ("", ""),
    ],
)
def test_an_errors_first_line_never_fails(error, shown):
    from distill.errors import first_line

    assert first_line(error) == shown
    assert first_line("x" * 500, 120) == "x" * 120 + "…"
