"""The official MCP Python SDK on both ends of the ext_proc end-to-end test
(tests/integration/e2e_extproc.rs).

`server`: one MCP server (the SDK's MCPServer, stateless Streamable HTTP under uvicorn) at
two paths: `/mcp/github` answers with SSE streams, `/mcp/files` with JSON bodies. Every
server lists the same tools, prompts and resources; which of them a caller sees is
cedar-gate's business.

`client`: the SDK's Client, through Envoy over mTLS, pinned to a protocol version
(`2026-07-28` or `legacy` for 2025-11-25's initialize handshake). Prints one JSON object:
the listed tool / prompt / resource names and what calling each tool by name did.
"""

import argparse
import asyncio
import contextlib
import json
import os
import socket
import ssl
import sys

TOOLS = ["search_issues", "create_issue", "delete_repository", "read_file", "write_file", "admin_shell"]


def build_app(path, json_response):
    from mcp.server.mcpserver import MCPServer
    from mcp.server.transport_security import TransportSecuritySettings

    server = MCPServer("cedar-gate-e2e")
    def make_tool(name):
        def tool(query: str = "") -> str:
            return f"{name} ran: {query}"
        return tool

    for name in TOOLS:
        server.add_tool(make_tool(name), name=name, description=f"the {name} tool")

    @server.prompt()
    def triage() -> str:
        return "Triage the open issues."

    @server.resource("file:///notes.txt")
    def notes() -> str:
        return "notes"

    return server.streamable_http_app(
        streamable_http_path=path,
        json_response=json_response,
        stateless_http=True,
        # Envoy forwards the client's Host; cedar-gate and Envoy guard this hop.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )


async def broken(scope, receive, send):
    """A server whose list answers cannot be read: `x-broken` says how (garbage, truncated,
    sse-garbage, oversize). cedar-gate must answer an error, never pass the list on."""
    while (await receive()).get("more_body"):
        pass
    how = dict(scope["headers"]).get(b"x-broken", b"").decode()
    tools = [{"name": f"secret_tool_{i}", "inputSchema": {"type": "object"}} for i in range(3)]
    whole = json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"tools": tools}})
    content_type = b"application/json"
    if how == "garbage":
        body = b"\x00\xffnot json secret_tool_0"
    elif how == "truncated":
        body = whole[: len(whole) // 2].encode()
    elif how == "sse-garbage":
        content_type = b"text/event-stream"
        body = b"event: message\ndata: {\"jsonrpc\": secret_tool_0\n\n"
    else:  # oversize: 9 MiB of tools
        many = [{"name": f"secret_tool_{i}", "description": "x" * 1000} for i in range(9 * 1024)]
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"tools": many}}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def serve(port_file):
    import uvicorn

    sse_app = build_app("/mcp/github", json_response=False)
    json_app = build_app("/mcp/files", json_response=True)

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            async with sse_app.router.lifespan_context(sse_app), json_app.router.lifespan_context(json_app):
                await receive()
                await send({"type": "lifespan.startup.complete"})
                await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        path = scope.get("path", "")
        if path.startswith("/mcp/broken"):
            await broken(scope, receive, send)
            return
        target = json_app if path.startswith("/mcp/files") else sse_app
        await target(scope, receive, send)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    with open(port_file + ".tmp", "w", encoding="utf-8") as out:
        out.write(str(sock.getsockname()[1]))
    os.replace(port_file + ".tmp", port_file)
    config = uvicorn.Config(app, http="h11", lifespan="on", access_log=False, log_level="warning")
    uvicorn.Server(config).run(sockets=[sock])


async def run_client(args):
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    tls = ssl.create_default_context(cafile=args.ca)
    tls.load_cert_chain(args.cert, args.key)
    http = httpx2.AsyncClient(verify=tls, timeout=20)
    transport = streamable_http_client(args.url, http_client=http)
    out = {}
    async with Client(transport, mode=args.mode, cache=None) as client:
        out["tools"] = sorted(t.name for t in (await client.list_tools()).tools)
        out["prompts"] = sorted(p.name for p in (await client.list_prompts()).prompts)
        out["resources"] = sorted(str(r.uri) for r in (await client.list_resources()).resources)
        calls = {}
        for name in TOOLS:
            try:
                result = await client.call_tool(name, {"query": "x"})
                calls[name] = "error" if result.is_error else "ok"
            except Exception as e:  # the 403 surfaces as a transport error
                calls[name] = f"refused: {type(e).__name__}: {e}"[:300]
        out["calls"] = calls
    print(json.dumps(out))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("server")
    s.add_argument("--port-file", required=True)
    c = sub.add_parser("client")
    c.add_argument("--url", required=True)
    c.add_argument("--mode", required=True)
    c.add_argument("--cert", required=True)
    c.add_argument("--key", required=True)
    c.add_argument("--ca", required=True)
    args = parser.parse_args()
    if args.cmd == "server":
        serve(args.port_file)
    else:
        asyncio.run(run_client(args))


if __name__ == "__main__":
    sys.exit(main())
