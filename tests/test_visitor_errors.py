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
