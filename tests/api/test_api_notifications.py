"""GET /api/notifications pages like every other list: page, page_size, total."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_the_mailbox_pages_like_every_other_list(api: Any) -> None:
    customer = api.new_customer()
    for _ in range(2):  # with the welcome message, three in all
        placed = await api.place(customer, [(api.product, 1)], token="tok_visa")
        assert placed.status_code == 202, placed.text
        await api.wait_status(placed.json()["id"], "CONFIRMED")
    headers = await api.auth(customer)

    async def three() -> dict[str, Any] | None:
        response = await api.client.get("/api/notifications", headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body if body["total"] == 3 else None

    everything = await api.eventually(three, what="three messages")
    assert (everything["page"], everything["page_size"], len(everything["items"])) == (1, 20, 3)
    assert [item["attachments"] for item in everything["items"]] == [[], [], []]

    pages = [
        (
            await api.client.get(
                "/api/notifications", params={"page": page, "page_size": 1}, headers=headers
            )
        ).json()
        for page in (1, 2, 3, 4)
    ]

    assert [len(page["items"]) for page in pages] == [1, 1, 1, 0]
    assert {page["total"] for page in pages} == {3}
    assert {page["page_size"] for page in pages} == {1}
    assert [page["items"][0]["id"] for page in pages[:3]] == [
        item["id"] for item in everything["items"]
    ]
    admin = await api.client.get(
        "/api/notifications",
        params={"customer_id": await api.user_id(customer), "page_size": 2},
        headers=await api.admin(),
    )
    assert admin.status_code == 200, admin.text
    assert (len(admin.json()["items"]), admin.json()["total"]) == (2, 3)


@pytest.mark.parametrize(
    "params", [{"page_size": 0}, {"page_size": 101}, {"page": 0}, {"page_size": "x"}]
)
async def test_the_mailbox_refuses_pages_out_of_bounds(api: Any, params: dict[str, Any]) -> None:
    response = await api.client.get(
        "/api/notifications", params=params, headers=await api.auth(api.new_customer())
    )

    api.problem(response, 422, "validation-error")
