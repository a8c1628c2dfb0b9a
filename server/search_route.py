"""GET /api/search: the answer, and a short way to it past the framework.

The search is the one request agents make all day, and at 50,000 articles the framework's share
of it (routing, validating five parameters, a dependency, two thread hand-offs, a second
validation of the answer) was 1.1 ms of a 17 ms search on two cores, measured in the running
server. `SearchFastPath` answers a well-formed search itself, in one hand-off to a worker
thread, with the same answer the route gives. Anything else goes on to the route unchanged: a
missing or malformed parameter, a refused token, a query the knowledge base refuses, no index.
The route answers those with its status and reason, and stays what the OpenAPI page documents."""

import json
import re
from collections.abc import Callable
from urllib.parse import parse_qsl

import anyio.to_thread

from kb.errors import KBError
from kb.knowledge_base import KnowledgeBase
from kb.querylog import QueryLog
from server.log_routes import agent_id

PATH = "/api/search"
# The route's own limits (server/app.py): a value outside them goes to the route for its 422.
K_RE = re.compile(r"[1-9][0-9]?")
K_MAX = 50
MAX_CATEGORY = 50
FIELDS = {"q", "k", "category", "agent"}


def answer(kb: KnowledgeBase, querylog: QueryLog | None, q: str, k: int,
           category: str | None, agent: str | None) -> bytes:
    """The search's JSON (server.schemas.SearchResponse), for the route and the fast path."""
    searcher = kb.searcher()  # one snapshot for the whole request
    query = kb.prepare(q, searcher)
    hits = searcher.search_query(query, k, category or None)
    query_id = querylog.log_search(q, hits, category=category or None,
                                   agent=agent) if querylog else None
    ids = [h.id for h in hits]
    results = [{
        "id": h.id, "title": h.title, "category": h.category, "score": round(h.score, 4),
        "lexical": round(h.lexical, 4), "dense": round(h.dense, 4), "confident": h.confident,
        "matched": {"kind": h.matched_kind, "text": h.matched_text},
        "answer": h.article["answer"], "answer_html": h.article["answer_html"],
        "basis_html": h.article["basis_html"],
        "related": related(searcher, h.article, ids),
    } for h in hits]
    body = {
        "query": q, "normalized": query.text,
        "terms": sorted({*query.words, *query.expansions}, key=len, reverse=True),
        "confident": bool(hits and hits[0].confident),
        "results": results, "query_id": query_id,
    }
    # Plain dicts to json: building the response models only to serialise them took 0.3 ms.
    # tests/test_search_route.py validates this output against SearchResponse.
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def related(searcher, article: dict, result_ids: list[str]) -> list[dict]:
    """The article's own related list; failing that, other results of the same category."""
    ids = [i for i in article.get("related") or [] if i in searcher.by_id]
    if not ids:
        ids = [i for i in result_ids if i != article["id"]
               and searcher.articles[searcher.by_id[i]]["category"] == article["category"]][:3]
    return [{"id": i, "title": searcher.articles[searcher.by_id[i]]["title"]} for i in ids]


class SearchFastPath:
    """ASGI middleware: answers well-formed GET /api/search requests, passes on the rest."""

    def __init__(self, app, kb: KnowledgeBase, querylog: QueryLog | None,
                 allows: Callable[[str | None], bool]):
        self.app = app
        self.kb, self.querylog, self.allows = kb, querylog, allows

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        args = self.arguments(scope)
        if args is None:
            await self.app(scope, receive, send)
            return
        try:
            body = await anyio.to_thread.run_sync(answer, self.kb, self.querylog, *args)
        except KBError:  # the route raises it again and answers with its status and reason
            await self.app(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    def arguments(self, scope: dict) -> tuple | None:
        """(q, k, category, agent) as the route would take them; None for anything the route
        should see: a missing or repeated parameter, one out of its limits, a refused token."""
        headers = {}
        for name, value in scope["headers"]:
            if name in (b"authorization", b"x-agent-id"):
                if name in headers:
                    return None
                headers[name] = value.decode("latin-1")
        if not self.allows(headers.get(b"authorization")):
            return None
        params: dict[str, str] = {}
        for name, value in parse_qsl(scope["query_string"].decode("latin-1"),
                                     keep_blank_values=True):
            if name in FIELDS:
                if name in params:
                    return None
                params[name] = value
        if "q" not in params:
            return None
        k = params.get("k", "10")
        category, agent = params.get("category"), params.get("agent")
        if not K_RE.fullmatch(k) or int(k) > K_MAX:
            return None
        if category and len(category) > MAX_CATEGORY:
            return None
        # An agent id has no limit to check: agent_id drops a malformed one, as the route does.
        return params["q"], int(k), category or None, agent_id(agent, headers.get(b"x-agent-id"))
