"""Calls cedar-gate's Envoy with an official SDK and reports the exception it raises.

The end-to-end refusal test (tests/integration/e2e_refusal.rs) runs this with the
project venv's python: the SDK talks mTLS to Envoy like any workload would, the request
is refused, and this prints one JSON line describing what the SDK raised, so the test
can assert on exactly the text a user sees:

    {"exception": "PermissionDeniedError", "message": "<str(exception)>", ...}

Usage: refusal.py SDK --base-url URL --ca FILE --cert FILE --key FILE [--model M] [--tool T]
with SDK one of `openai`, `anthropic`, `mcp`. Exits 1 if the call did not raise.
"""

import argparse
import asyncio
import json
import ssl
import sys

import httpx2


def tls(args):
    """The SSL context of a workload: trusts the test CA, presents its SPIFFE cert."""
    context = ssl.create_default_context(cafile=args.ca)
    context.load_cert_chain(args.cert, args.key)
    return context


def report(exc, **extra):
    print(json.dumps({"exception": type(exc).__name__, "message": str(exc), **extra}))


def run_openai(args):
    import openai

    http = httpx2.Client(verify=tls(args), trust_env=False, timeout=10)
    client = openai.OpenAI(
        base_url=f"{args.base_url}/v1", api_key="unused", http_client=http, max_retries=0
    )
    try:
        client.chat.completions.create(
            model=args.model, messages=[{"role": "user", "content": "hello"}]
        )
    except openai.APIStatusError as e:
        report(e, status=e.status_code, code=e.code, type=e.type)
        return 0
    return 1


def run_anthropic(args):
    import anthropic

    http = httpx2.Client(verify=tls(args), trust_env=False, timeout=10)
    client = anthropic.Anthropic(
        base_url=args.base_url, api_key="unused", http_client=http, max_retries=0
    )
    try:
        client.messages.create(
            model=args.model,
            max_tokens=64,
            messages=[{"role": "user", "content": "hello"}],
        )
    except anthropic.APIStatusError as e:
        report(e, status=e.status_code)
        return 0
    return 1


async def run_mcp(args):
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.exceptions import MCPError

    http = httpx2.AsyncClient(verify=tls(args), trust_env=False, timeout=10)
    async with http:
        async with streamable_http_client(args.base_url, http_client=http) as streams:
            read, write = streams[0], streams[1]
            async with ClientSession(read, write) as session:
                # No `initialize`: the test's upstream is not an MCP server, and the
                # refused call never reaches it. The SDK sends the call all the same.
                try:
                    await session.call_tool(args.tool, {"owner": "acme", "repo": "x"})
                except MCPError as e:
                    report(e, code=e.code, error_message=e.message, data=e.data)
                    return 0
    return 1


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("sdk", choices=["openai", "anthropic", "mcp"])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--model", default="")
    parser.add_argument("--tool", default="")
    args = parser.parse_args()
    if args.sdk == "openai":
        code = run_openai(args)
    elif args.sdk == "anthropic":
        code = run_anthropic(args)
    else:
        code = asyncio.run(run_mcp(args))
    if code:
        print(json.dumps({"exception": None, "message": "the call was not refused"}))
    sys.exit(code)


if __name__ == "__main__":
    main()
