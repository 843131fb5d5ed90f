"""Full-text search over products' names and descriptions: SQLite's FTS5 on the embedded
default, PostgreSQL's text search in production, with the same query language: the words of
`q`, each matched as a prefix (`kett` finds "kettle"), all required, ranked by relevance."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from sqlalchemy import Float, String, cast, column, func, literal, literal_column, select, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ColumnElement, Subquery

from agora.messaging import Database
from agora.services.catalog.store import Page, page_of, products

__all__ = ["amount", "index", "matches", "price_order", "search_page", "terms"]

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


def price_order(dialect: str) -> ColumnElement[Any]:
    """The products' price, to compare and sort by. SQLite keeps exact decimals as text, where
    "129.00" sorts before "40": there it is compared as REAL, which orders amounts of up to 14
    digits (`Amount`) exactly. PostgreSQL's NUMERIC is exact as it is."""
    return cast(products.c.price, Float) if dialect == "sqlite" else products.c.price


def amount(dialect: str, value: Decimal) -> ColumnElement[Any]:
    """`value`, to compare with `price_order`."""
    bound = literal(value, products.c.price.type)
    return cast(bound, Float) if dialect == "sqlite" else bound


async def search_page(
    db: Database,
    words: list[str],
    *,
    store_id: str | None,
    min_price: Decimal | None,
    max_price: Decimal | None,
    order: str,
    page: int,
    page_size: int,
) -> Page:
    """Listed products matching every word (full text), filtered, in `order` (relevance,
    newest, price, -price, rating or name)."""
    dialect = db.engine.dialect.name
    query = select(products).where(products.c.listed.is_(True))
    rank = None
    if words:
        hits = matches(dialect, words)
        query = query.join(hits, hits.c.product_id == products.c.id)
        rank = hits.c.rank
    if store_id is not None:
        query = query.where(products.c.store_id == store_id)
    price = price_order(dialect)
    if min_price is not None:
        query = query.where(price >= amount(dialect, min_price))
    if max_price is not None:
        query = query.where(price <= amount(dialect, max_price))
    orderings: dict[str, list[Any]] = {
        "relevance": [rank] if rank is not None else [],
        "newest": [products.c.created_at.desc()],
        "price": [price],
        "-price": [price.desc()],
        "rating": [
            (products.c.rating_sum * 1.0 / func.nullif(products.c.rating_count, 0))
            .desc()
            .nulls_last()
        ],
        "name": [products.c.name],
    }
    async with db.read() as conn:
        return await page_of(conn, query, [*orderings[order], products.c.id], page, page_size)
