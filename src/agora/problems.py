"""RFC 9457 problem details: every error Agora's HTTP API answers is one of these.

Each kind of problem has a stable `type` (a URI reference, `/problems/<slug>`, documented in
docs/api.md) that clients may switch on; `title` is the same for every instance of a type and
`detail` says what went wrong this time.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PROBLEM_JSON", "NotFound", "ProblemError", "problem_body"]

PROBLEM_JSON = "application/problem+json"


class ProblemError(Exception):
    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.headers = headers or {}
        self.extensions = extensions

    def body(self, instance: str | None = None) -> dict[str, Any]:
        return problem_body(
            self.status, self.slug, self.title, self.detail, instance, **self.extensions
        )


def problem_body(
    status: int, slug: str, title: str, detail: str, instance: str | None = None, **extensions: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"/problems/{slug}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extensions)
    return body


class NotFound(ProblemError):
    """What does not exist for the caller (absent, or not theirs to read: the two look the same
    from outside). A handler raises a subclass named for the thing; it is answered 404."""

    def __init__(self, slug: str, title: str, detail: str, **extensions: Any) -> None:
        super().__init__(404, slug, title, detail, **extensions)
