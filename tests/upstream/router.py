"""A model-server-like upstream for the differential end-to-end test.

Starlette routes served by uvicorn (h11): the router stack under vLLM, LiteLLM and most
Python MCP servers. It routes the way such servers do: on the percent-decoded path
(uvicorn decodes `%2F` to `/`), case-sensitively, with Python's `$` (which also matches
before a trailing newline), and it honours `X-HTTP-Method-Override` the way method-override
middlewares do. Every handler that runs appends one JSON line to the record file: which
handler ran, on which model or tool, the path it saw, and the decision id cedar-gate set.
It answers 200 `{"ok":true}`.

Usage: router.py --record FILE --port-file FILE (binds 127.0.0.1 on a free port and writes
the port to the port file once it listens).
"""

import argparse
import json
import os
import socket

import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
OVERRIDE_HEADERS = (b"x-http-method-override", b"x-http-method", b"x-method-override")
URL_OVERRIDE_HEADERS = (b"x-original-url", b"x-rewrite-url")
RECORD_FILE = None


class MethodOverride:
    """Runs a request as the method an override header names (as Rails, Express's
    method-override, Spring's HiddenHttpMethodFilter and friends do), on the URL an
    `X-Original-URL` / `X-Rewrite-URL` header names (as IIS URL Rewrite and Symfony behind
    a trusted proxy do)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name.lower() in OVERRIDE_HEADERS:
                    scope = dict(scope, method=value.decode("latin-1").strip().upper())
                    break
            for name, value in scope["headers"]:
                if name.lower() in URL_OVERRIDE_HEADERS:
                    path, _, query = value.decode("latin-1").partition("?")
                    scope = dict(scope, path=path, raw_path=path.encode("latin-1"))
                    if query:
                        scope["query_string"] = query.encode("latin-1")
                    break
        await self.app(scope, receive, send)


async def body_json(request):
    try:
        value = json.loads(await request.body())
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


async def record(request, handler, model=None, tool=None, rpc=None):
    line = {
        "handler": handler,
        "method": request.method,
        "path": request.scope["path"],
        "raw_path": request.scope.get("raw_path", b"").decode("latin-1"),
        "query": request.scope.get("query_string", b"").decode("latin-1"),
        "model": model,
        "tool": tool,
        "rpc": rpc,
        "decision_id": request.headers.get("x-cedar-gate-decision-id"),
        "test_id": request.headers.get("x-test-id"),
    }
    # One write per line, in the event loop's single thread: lines never interleave.
    with open(RECORD_FILE, "a", encoding="utf-8") as out:
        out.write(json.dumps(line) + "\n")
    return JSONResponse({"ok": True})


def body_model(handler):
    """The model comes from the body, else from `?model=` (as realtime and some
    OpenAI-compatible servers accept it)."""

    async def endpoint(request):
        body = await body_json(request) or {}
        model = body.get("model")
        if not isinstance(model, str):
            model = request.query_params.get("model")
        return await record(request, handler, model=model)

    return endpoint


def form_model(handler):
    """An upload endpoint: the model is a form field, read as Starlette reads forms
    (python-multipart; the last of two same-named fields wins). A form it cannot parse
    is a 400 and runs nothing, as in FastAPI."""

    async def endpoint(request):
        try:
            form = await request.form()
        except Exception:  # noqa: BLE001 - any parse error means the handler does not run
            return JSONResponse({"error": "bad form"}, status_code=400)
        model = form.get("model")
        return await record(request, handler, model=model if isinstance(model, str) else None)

    return endpoint


def path_model(handler, param):
    """The model is a path parameter (Azure deployment, Gemini, Vertex, Bedrock)."""

    async def endpoint(request):
        model = request.path_params[param] or None
        verb = request.path_params.get("verb")
        return await record(request, f"{handler}:{verb}" if verb else handler, model=model)

    return endpoint


def plain(handler):
    async def endpoint(request):
        return await record(request, handler)

    return endpoint


def mcp(server):
    """A JSON-RPC MCP endpoint: `tools/call` runs the tool named in `params.name`."""

    async def endpoint(request):
        body = await body_json(request) or {}
        method = body.get("method")
        tool = None
        if method == "tools/call":
            name = (body.get("params") or {}).get("name")
            tool = f"{server}/{name}" if isinstance(name, str) else None
        return await record(request, f"mcp_{server}", tool=tool, rpc=method)

    return endpoint


async def ready(_request):
    return PlainTextResponse("ready")


ROUTES = [
    Route("/__ready", ready, methods=["GET"]),
    # OpenAI and OpenAI-compatible servers.
    Route("/v1/chat/completions", body_model("chat_completions"), methods=["POST"]),
    Route("/v1/completions", body_model("completions"), methods=["POST"]),
    Route("/v1/embeddings", body_model("embeddings"), methods=["POST"]),
    Route("/v1/responses", body_model("responses"), methods=["POST"]),
    Route("/v1/threads/{thread_id}/runs", body_model("threads_runs"), methods=["POST"]),
    Route("/v1/assistants", body_model("assistants"), methods=["POST"]),
    Route("/v1/realtime", body_model("realtime"), methods=["GET"]),
    Route("/v1/audio/transcriptions", form_model("audio_transcriptions"), methods=["POST"]),
    Route("/v1/files", plain("files"), methods=["POST"]),
    Route("/v1/batches", plain("batches"), methods=["POST"]),
    # Gemini, stable and beta (before /v1/models/{model:path}, which would take them).
    Route("/v1beta/models/{model}:{verb}", path_model("gemini", "model"), methods=["POST"]),
    Route("/v1/models/{model}:{verb}", path_model("gemini", "model"), methods=["POST"]),
    Route("/v1/models", plain("models_list"), methods=["GET"]),
    Route("/v1/models/{model:path}", path_model("models_get", "model"), methods=["GET"]),
    # Anthropic.
    Route("/v1/messages", body_model("anthropic_messages"), methods=["POST"]),
    # Vertex AI, every publisher.
    Route(
        "/v1/projects/{project}/locations/{location}/publishers/{publisher}/models/{model}:{verb}",
        path_model("vertex", "model"),
        methods=["POST"],
    ),
    # Azure OpenAI: the deployment is the model. LiteLLM serves it too, with a deployment
    # of several segments, and the legacy engines API; in both the path's model wins over
    # the body's.
    Route(
        "/openai/deployments/{deployment:path}/chat/completions",
        path_model("azure_chat", "deployment"),
        methods=["POST"],
    ),
    Route("/v1/engines/{model:path}/chat/completions", path_model("engines_chat", "model"), methods=["POST"]),
    # Bedrock runtime: the model id may be an ARN with slashes.
    Route("/model/{model:path}/invoke", path_model("bedrock_invoke", "model"), methods=["POST"]),
    Route("/model/{model:path}/converse", path_model("bedrock_converse", "model"), methods=["POST"]),
    # MCP servers (streamable HTTP).
    Route("/mcp/files", mcp("files"), methods=["POST"]),
    Route("/mcp/github", mcp("github"), methods=["POST"]),
    # Served on paths no route of the shipped table names: LiteLLM's unversioned OpenAI
    # routes, Ollama's native API, an MCP server mounted at /mcp.
    Route("/chat/completions", body_model("chat_unversioned"), methods=["POST"]),
    Route("/api/chat", body_model("ollama_chat"), methods=["POST"]),
    Route("/mcp", mcp("unrouted"), methods=["POST"]),
    Route("/admin", plain("admin"), methods=ALL_METHODS),
    Route("/admin/{rest:path}", plain("admin"), methods=ALL_METHODS),
    Route("/{rest:path}", plain("catch_all"), methods=ALL_METHODS),
]


def main():
    global RECORD_FILE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", required=True)
    parser.add_argument("--port-file", required=True)
    args = parser.parse_args()
    RECORD_FILE = args.record
    open(RECORD_FILE, "a", encoding="utf-8").close()

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    with open(args.port_file + ".tmp", "w", encoding="utf-8") as out:
        out.write(str(sock.getsockname()[1]))
    os.replace(args.port_file + ".tmp", args.port_file)

    app = MethodOverride(Starlette(routes=ROUTES))
    config = uvicorn.Config(app, http="h11", lifespan="off", access_log=False, log_level="warning")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
