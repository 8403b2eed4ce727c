"""An agent that drains a queue through `tracker serve`'s `/mcp` (MCP over Streamable HTTP) with
the official MCP Python SDK: claim_next, then done with the lease's token, until nothing is
ready. Usage: http_agent.py URL TOKEN NAME. Prints one JSON line per step."""
import asyncio
import json
import sys

from mcp import ClientSession
import mcp.client.streamable_http as transport


def attr(obj, *names):
    for n in names:
        if hasattr(obj, n):
            return getattr(obj, n)
    return None


def emit(**kv):
    print(json.dumps(kv), flush=True)


def connect(url, headers):
    # The SDK changed how headers are given across versions: a client of its own, or a keyword.
    if hasattr(transport, "streamable_http_client"):
        import httpx2
        client = httpx2.AsyncClient(headers=headers, timeout=30)
        return transport.streamable_http_client(url, http_client=client)
    return transport.streamablehttp_client(url, headers=headers)


async def call(session, name, args):
    r = await session.call_tool(name, args)
    return bool(attr(r, "is_error", "isError")), attr(r, "structured_content", "structuredContent")


async def main(url, token, name):
    headers = {"Authorization": "Bearer " + token, "X-Tracker-As": name}
    async with connect(url, headers) as streams:
        read, write = streams[0], streams[1]
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            tools = await session.list_tools()
            emit(step="init", server=attr(attr(init, "server_info", "serverInfo"), "name"),
                 tools=sorted(t.name for t in tools.tools))
            done = []
            while True:
                err, item = await call(session, "claim_next", {"ttl": "5m"})
                if err:
                    emit(step="drained", kind=item["error"]["kind"], done=done)
                    break
                num, token_ = item["num"], item["claim"]["token"]
                # A name proves nothing over HTTP: done without the token is refused.
                err, refused = await call(session, "done", {"item": str(num)})
                if not err:
                    emit(step="unfenced_done_accepted", num=num)
                    return
                err, finished = await call(session, "done", {"item": str(num), "token": token_})
                if err:
                    emit(step="done_failed", num=num, error=finished)
                    return
                done.append(num)
            emit(step="holder", pid=item.get("error", {}).get("kind"))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
