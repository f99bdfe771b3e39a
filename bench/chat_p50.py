"""Chat latency alone: p50/p95 of /chat through the running app for one model, with nothing else running.

    python -m bench.chat_p50 --results-dir runs --model <run>/top_k-seed0 [--requests 100]

The app is served in its own process on a free local port, as `bench/compare_pipelines.py` does for its chat
column; requests are sent one after another over Gradio's HTTP API and with gradio_client.
"""

from __future__ import annotations

import argparse
import json

from bench.compare_pipelines import chat_latency


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results-dir", required=True)
    parser.add_argument("--model", required=True, help="run/model, as Chat lists it")
    parser.add_argument("--requests", type=int, default=100)
    args = parser.parse_args()
    result = chat_latency(args.results_dir, args.model, args.requests)
    print(json.dumps(result))
    print(
        f"/chat, {args.model}, {args.requests} requests one after another: p50 {result['p50_ms']:.1f} ms, "
        f"p95 {result['p95_ms']:.1f} ms over HTTP; with gradio_client p50 {result['client']['p50_ms']:.1f} ms"
    )


if __name__ == "__main__":
    main()
