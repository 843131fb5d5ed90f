"""Full-text search over products' names and descriptions: SQLite's FTS5 on the embedded
default, PostgreSQL's text search in production, with the same query language: the words of
`q`, each matched as a prefix (`kett` finds "kettle"), all required, ranked by relevance."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Float, String, column, func, literal_column, select, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ColumnElement, Subquery

from agora.services.catalog.store import products

__all__ = ["index", "matches", "terms"]

MAX_TERMS = 12
# The expression PostgreSQL's GIN index ix_products_search is built on (migration 0002).
SEARCH_DOCUMENT = "to_tsvector('english', products.name || ' ' || products.description)"


def terms(q: str) -> list[str]:
    """The words of a query, lower case, without any operator either engine would read."""
    return re.findall(r"[^\W_]+", q.lower())[:MAX_TERMS]


async def index(conn: AsyncConnection, product_id: str, name: str, description: str) -> None:
    """Keep the product's searchable text current (PostgreSQL's index follows the row)."""
    if conn.dialect.name != "sqlite":
        return
    await conn.execute(
        text("DELETE FROM products_fts WHERE product_id = :id").bindparams(id=product_id)
    )
    await conn.execute(
        text(
            "INSERT INTO products_fts (product_id, name, description) VALUES (:id, :name, :d)"
        ).bindparams(id=product_id, name=name, d=description)
    )


def matches(dialect: str, words: list[str]) -> Subquery:
    """(product_id, rank) of the products matching every word; a lower rank is better."""
    if dialect == "sqlite":
        query = " ".join(f'"{word}"*' for word in words)
        return (
            text(
                "SELECT product_id, bm25(products_fts) AS rank FROM products_fts "
                "WHERE products_fts MATCH :query"
            )
            .bindparams(query=query)
            .columns(column("product_id", String), column("rank", Float))
            .subquery("hits")
        )
    tsquery = func.to_tsquery("english", " & ".join(f"{word}:*" for word in words))
    document: ColumnElement[Any] = literal_column(SEARCH_DOCUMENT)
    return (
        select(
            products.c.id.label("product_id"),
            (-func.ts_rank(document, tsquery)).label("rank"),
        )
        .where(document.op("@@")(tsquery))
        .subquery("hits")
    )
