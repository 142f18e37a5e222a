"""Budget limits as people type them: a clear ValueError for anything that is not one."""

from __future__ import annotations

from decimal import Decimal

import pytest

from storage.limits import parse_cost


def test_costs_parse_to_cents() -> None:
    assert parse_cost("$5.505") == Decimal("5.50")
    assert parse_cost(" 12 ") == Decimal(12)


@pytest.mark.parametrize("text", ["NaN", "sNaN", "Infinity", "-inf", "0", "-3", "five", ""])
def test_what_is_not_an_amount_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match=r"amount|cost limit"):
        parse_cost(text)
