"""`list_staff` pages through the Xiaolanben staff list up to `limit`."""

from __future__ import annotations

import pytest

from tests.sandbox_fixtures import Sandbox
from tools.errors import AuthenticationError
from tools.services import Services
from tools.staff import list_staff


@pytest.fixture
def sandbox_with_staff(sandbox: Sandbox) -> Sandbox:
    for number in range(120):
        sandbox.xiaolanben.add_staff(f"员工{number:03d}", f"1391234{number:04d}", "销售一部")
    return sandbox


async def test_limit_bounds_the_answer_and_says_more_are_there(
    services: Services, sandbox_with_staff: Sandbox
) -> None:
    result = await list_staff(services, limit=5)
    assert [s.real_name for s in result.staff] == [f"员工{n:03d}" for n in range(5)]
    assert result.more_available is True


async def test_pages_are_fetched_until_the_limit(
    services: Services, sandbox_with_staff: Sandbox
) -> None:
    result = await list_staff(services, limit=110)
    assert len(result.staff) == 110
    assert result.more_available is True
    everyone = await list_staff(services, limit=500)
    assert len(everyone.staff) == 120
    assert everyone.more_available is False


async def test_search_narrows_by_name_or_mobile(
    services: Services, sandbox_with_staff: Sandbox
) -> None:
    by_name = await list_staff(services, search="员工01")
    assert len(by_name.staff) == 10
    assert by_name.more_available is False
    by_mobile = await list_staff(services, search="13912340042")
    assert [s.staff_id for s in by_mobile.staff] == [10_001 + 42]


async def test_a_wrong_key_is_a_vendor_error_naming_what_to_do(
    services: Services,
) -> None:
    from pydantic import SecretStr

    services.settings.xiaolanben.sign_key = SecretStr("wrong-key")
    with pytest.raises(AuthenticationError) as raised:
        await list_staff(services)
    assert raised.value.code == "401"
    assert "wrong-key" not in str(raised.value)
