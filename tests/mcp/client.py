"""Drives `tracker mcp` with the official MCP Python SDK (`pip install mcp`), as an agent would.

Usage: client.py TRACKER_BIN DB SCENARIO. Prints one JSON object per line (what the test checks).
"""
import asyncio
import json
import os
import subprocess
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


def attr(obj, *names):
    """The SDK renamed fields across versions (inputSchema -> input_schema): take either."""
    for n in names:
        if hasattr(obj, n):
            return getattr(obj, n)
    return None


def emit(**kv):
    print(json.dumps(kv), flush=True)


async def call(session, name, args):
    r = await session.call_tool(name, args)
    return {"is_error": bool(attr(r, "is_error", "isError")),
            "structured": attr(r, "structured_content", "structuredContent"),
            "text": [c.text for c in r.content if getattr(c, "type", "") == "text"]}


async def main(bin_path, db, scenario):
    # The whole environment (the SDK passes only a few variables by default): TRACKER_TTL, PG*.
    params = StdioServerParameters(command=bin_path, args=["--db", db, "mcp"], env=dict(os.environ))
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            emit(step="init", server=attr(attr(init, "server_info", "serverInfo"), "name"))
            tools = await session.list_tools()
            # Only where it is checked: the schemas make a long line, and a reader that waits
            # for the agent to finish before reading would block it on a full pipe.
            if scenario == "work":
                emit(step="tools", names=sorted(t.name for t in tools.tools),
                     schemas={t.name: {"input": attr(t, "input_schema", "inputSchema"),
                                       "output": attr(t, "output_schema", "outputSchema"),
                                       "description": t.description} for t in tools.tools})
                emit(step="new", **await call(session, "new", {"title": "from an agent", "labels": ["mcp"]}))
                emit(step="new2", **await call(session, "new", {"title": "second", "priority": 0}))
                claimed = await call(session, "claim_next", {"ttl": "10m"})
                emit(step="claim_next", **claimed)
                token = claimed["structured"]["claim"]["token"]
                num = str(claimed["structured"]["num"])
                emit(step="renew", **await call(session, "renew", {"item": num, "token": token}))
                emit(step="wrong_token", **await call(session, "done", {"item": num, "token": token + 100}))
                emit(step="done", **await call(session, "done", {"item": num, "token": token}))
                emit(step="missing", **await call(session, "show", {"item": "999"}))
                emit(step="list", **await call(session, "list", {"status": "all"}))
                emit(step="log", **await call(session, "log", {"item": num}))
                emit(step="status", **await call(session, "status", {}))
                emit(step="dep_add", **await call(session, "dep_add", {"item": "1", "blocker": "2"}))
                emit(step="dep_cycle", **await call(session, "dep_add", {"item": "2", "blocker": "1"}))
                emit(step="dep_rm", **await call(session, "dep_rm", {"item": "1", "blocker": "2"}))
                emit(step="update", **await call(session, "update", {"item": "1", "title": "renamed", "if_version": 1}))
                emit(step="release", **await call(session, "release", {"item": "1"}))
                emit(step="claim_default_ttl", **await call(session, "claim", {"item": "1"}))
                emit(step="bad_args_missing", **await call(session, "claim", {"ttl": "1m"}))
                emit(step="bad_args_type", **await call(session, "new", {"title": "x", "priority": "high"}))
                emit(step="bad_args_unknown", **await call(session, "claim_next", {"labels": "db"}))
            elif scenario == "drain":
                # Take the best ready item and finish it, until nothing is ready.
                done = []
                while True:
                    claimed = await call(session, "claim_next", {"ttl": "1m"})
                    if claimed["is_error"]:
                        emit(step="stopped", **claimed)
                        break
                    item = claimed["structured"]
                    finished = await call(session, "done", {"item": str(item["num"]), "token": item["claim"]["token"]})
                    if finished["is_error"]:
                        emit(step="done_failed", **finished)
                        break
                    done.append(item["num"])
                emit(step="drained", nums=done)
            elif scenario == "concurrent":
                # A claim that waits must hold up no other call, and a cancelled one claims
                # nothing: the wait runs as a task while other calls are made beside it.
                held = await call(session, "claim", {"item": "1", "ttl": "10m"})
                emit(step="held", **held)
                waiting = asyncio.create_task(call(session, "claim_next", {"wait": "60s"}))
                await asyncio.sleep(0.5)
                renewed = await call(session, "renew", {"item": "1"})
                emit(step="renew_beside_wait", pending=not waiting.done(), **renewed)
                await session.send_ping()
                emit(step="ping_beside_wait", pending=not waiting.done())
                waiting.cancel()
                try:
                    await waiting
                except asyncio.CancelledError:
                    pass
                await asyncio.sleep(0.5)
                # Something to claim appears: the cancelled wait must not take it.
                emit(step="new", **await call(session, "new", {"title": "after the cancel"}))
                await asyncio.sleep(1.5)
                emit(step="after_cancel", **await call(session, "show", {"item": "2"}))
            elif scenario == "restart":
                # The database server restarts under a long-lived server: the next calls work,
                # the lease included (TRACKER_TEST_RESTART is the command that restarts it).
                emit(step="before", **await call(session, "new", {"title": "before the restart"}))
                claimed = await call(session, "claim", {"item": "1", "ttl": "10m"})
                emit(step="claim", **claimed)
                subprocess.run(os.environ["TRACKER_TEST_RESTART"], shell=True, check=True)
                token = claimed["structured"]["claim"]["token"]
                emit(step="renew", **await call(session, "renew", {"item": "1", "token": token}))
                emit(step="after", **await call(session, "new", {"title": "after the restart"}))
                emit(step="list", **await call(session, "list", {"status": "all"}))
            elif scenario == "plan":
                # A planner writes a tree at once, and leaves a note on one task.
                items = [
                    {"key": "e1", "title": "Epic one", "type": "epic", "priority": 0},
                    {"key": "a", "title": "A: schema", "parent": "e1"},
                    {"key": "b", "title": "B: migration", "parent": "e1", "blocked_by": ["a"]},
                    {"key": "c", "title": "C: docs", "parent": "e1", "type": "chore"},
                    {"key": "e2", "title": "Epic two", "type": "epic", "priority": 0},
                    {"key": "d", "title": "D: parser", "parent": "e2", "type": "feature"},
                    {"key": "f", "title": "F: fix the crash", "parent": "e2", "type": "bug"},
                    {"key": "g", "title": "G: after both epics", "blocked_by": ["e1", "e2"]},
                ]
                planned = await call(session, "plan", {"items": items, "idempotency_key": "plan-1"})
                emit(step="plan", **planned)
                emit(step="plan_again", **await call(session, "plan", {"items": items, "idempotency_key": "plan-1"}))
                a = str(next(c["num"] for c in planned["structured"]["created"] if c["key"] == "a"))
                emit(step="comment", **await call(session, "comment", {"item": a, "text": "use the v2 schema"}))
                emit(step="show", **await call(session, "show", {"item": a}))
            elif scenario == "drain_tree":
                # Work until nothing is open: what is not ready yet (an epic whose children
                # another agent holds) becomes ready when they are done.
                done = []
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 90
                while loop.time() < deadline:
                    got = await call(session, "claim_next", {"ttl": "5m"})
                    if got["is_error"]:
                        left = await call(session, "list", {"status": "open"})
                        if not left["structured"]["items"]:
                            break
                        await asyncio.sleep(0.1)
                        continue
                    item = got["structured"]
                    num = str(item["num"])
                    token = item["claim"]["token"]
                    await call(session, "comment", {"item": num, "text": "picked up"})
                    fin = await call(session, "done", {"item": num, "token": token, "reason": "finished"})
                    if fin["is_error"]:
                        emit(step="done_failed", item=num, **fin)
                        continue
                    done.append(item["num"])
                emit(step="drained", done=done)
            elif scenario == "hold":
                # Claim, report, then wait to be killed: the lease is tied to the server.
                emit(step="claim", **await call(session, "claim", {"item": "1", "ttl": "1h"}))
                await asyncio.sleep(60)


asyncio.run(main(*sys.argv[1:4]))
