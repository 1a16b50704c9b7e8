"""How well catalogue servers fit a described capability, as an absolute measure (search ranks are relative).

server_search orders servers for a text, but its scores are rank fusions plus name boosts: the first server of any
query scores about 1, whether it fits or not. To decide whether a capability ("find a hotel in Barcelona") has a
server at all, the planner needs evidence it can compare with a threshold: the cosine similarity between the text
and each candidate's document, and between the text and the candidate's nearest tool (servers are often described
vaguely, their tools precisely).
"""

from dataclasses import dataclass

from django.db import connection

from registry_app.embeddings import EmbeddingError, embed_queries, get_provider
from registry_app.search_index import embedding_expression, vector_literal, vector_type


@dataclass(frozen=True)
class Fit:
    server_id: int
    document: float  # cosine similarity of the text and the server's document, -1..1
    tool: float  # ... and the server's nearest tool (the document's when no tool has a vector)
    tool_name: str

    @property
    def score(self) -> float:
        return max(self.document, self.tool)


_FIT_SQL = """
WITH q AS (SELECT %s::{vtype} AS v)
SELECT s.id, 1 - ({doc} <=> q.v),
       (SELECT 1 - ({tool} <=> q.v) FROM registry_app_toolembedding te JOIN registry_app_servertool t ON t.id = te.tool_id
        WHERE t.server_id = s.id AND te.model = %s ORDER BY {tool} <=> q.v LIMIT 1),
       (SELECT t.name FROM registry_app_toolembedding te JOIN registry_app_servertool t ON t.id = te.tool_id
        WHERE t.server_id = s.id AND te.model = %s ORDER BY {tool} <=> q.v LIMIT 1)
FROM registry_app_mcpserver s JOIN registry_app_serverembedding e ON e.server_id = s.id AND e.model = %s, q
WHERE s.id = ANY(%s)
"""


def capability_fit(text: str, server_ids: list[int]) -> dict[int, Fit]:
    """Each server's fit to the text ({} when the embedding model is unavailable: no evidence)."""
    if not server_ids:
        return {}
    provider = get_provider()
    try:
        vector = embed_queries(provider, [text])[0]
    except EmbeddingError:
        return {}
    sql = _FIT_SQL.format(vtype=vector_type(provider.dims), doc=embedding_expression(provider.dims, alias="e"),
                          tool=embedding_expression(provider.dims, alias="te"))
    with connection.cursor() as cursor:
        cursor.execute(sql, [vector_literal(vector), provider.name, provider.name, provider.name, list(server_ids)])
        rows = cursor.fetchall()
    return {
        sid: Fit(server_id=sid, document=float(doc), tool=float(tool if tool is not None else doc),
                 tool_name=tool_name or "")
        for sid, doc, tool, tool_name in rows
    }
