"""Drive an MCP server with the official Python SDK, as any MCP client would.

Reads a plan as JSON on standard input:
  {"server": {"command", "args", "env", "cwd"} | {"url", "headers"}, "calls": [[tool, arguments], ...]}
initializes, lists the tools, makes each call in order, and prints as JSON what the client
saw: the server's name and instructions, every tool's definition, and each call's
isError, structuredContent and text. A connection the server refuses prints
{"refused": "<what the client raised>"}.
"""

import asyncio
import json
import sys

from mcp import StdioServerParameters
from mcp.client import Client


async def main() -> None:
    plan = json.load(sys.stdin)
    spec = plan["server"]
    if "url" in spec:
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        server = streamable_http_client(spec["url"], http_client=httpx2.AsyncClient(headers=spec.get("headers", {})))
    else:
        server = StdioServerParameters(
            command=spec["command"], args=spec.get("args", []), env=spec.get("env"), cwd=spec.get("cwd")
        )
    async with Client(server) as client:
        tools = await client.list_tools()
        out = {
            "server": client.server_info.name if client.server_info else None,
            "instructions": client.instructions,
            "tools": [t.model_dump(by_alias=True, exclude_none=True, mode="json") for t in tools.tools],
            "results": [],
        }
        for name, arguments in plan["calls"]:
            result = await client.call_tool(name, arguments)
            out["results"].append(
                {
                    "isError": bool(result.is_error),
                    "structured": result.structured_content,
                    "text": "".join(getattr(c, "text", "") for c in result.content),
                }
            )
    json.dump(out, sys.stdout)


try:
    asyncio.run(main())
except Exception as e:  # the SDK's own refusal of the connection, e.g. HTTP 401
    json.dump({"refused": repr(e)}, sys.stdout)
