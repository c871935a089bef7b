"""The Slack bot's languages (bots/locale.py, phase 1 of issue 17): a user's from
`users.info` with `include_locale`, asked over real HTTP of the fake Slack and cached with
a bounded age and size; the workspace's (CRMOPS_LOCALE) for channels and when Slack cannot
say; the subcommands' Chinese names."""

from __future__ import annotations

from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bots.commands import SUBCOMMANDS
from bots.fake_slack import FakeSlack
from bots.locale import CHINESE_SUBCOMMANDS, SlackLocales, SlackPerson, subcommand_name
from tools.sandbox.simulation import serve

BOT_TOKEN = "xoxb-locale-test"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack(bot_token=BOT_TOKEN, app_token="xapp-locale-test")
    fake.users = {
        "U0ZH": {"locale": "zh-CN", "tz": "Asia/Shanghai"},
        "U0ID": {"locale": "id-ID", "tz": "Asia/Jakarta"},
        "U0EN": {"locale": "en-US", "tz": "America/Los_Angeles"},
        "U0FR": {"locale": "fr-FR", "tz": "Europe/Paris"},
        "U0NOTZ": {"locale": "zh-TW", "tz": "Not/AZone"},
    }
    with serve(fake.app) as served:
        fake.url = served.url
        yield fake


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def locales(
    slack: FakeSlack,
    clock: Clock | None = None,
    *,
    ttl: float = 3600,
    failed_ttl: float = 60,
    max_users: int = 100,
) -> SlackLocales:
    client = AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url)
    return SlackLocales(
        client,
        default="en",
        clock=clock or Clock(),
        ttl=ttl,
        failed_ttl=failed_ttl,
        max_users=max_users,
    )


async def test_a_user_is_answered_in_their_slack_language(slack: FakeSlack) -> None:
    found = locales(slack)
    zh = await found.of_user("U0ZH")
    assert zh.locale == "zh-CN"
    assert zh.tz is not None
    assert zh.tz.key == "Asia/Shanghai"
    assert (await found.of_user("U0ID")).locale == "id"
    assert (await found.of_user("U0EN")).locale == "en"
    asked = slack.calls_to("users.info")
    assert [call.data["user"] for call in asked] == ["U0ZH", "U0ID", "U0EN"]
    assert all(call.data["include_locale"] in {"1", "true"} for call in asked)


async def test_a_language_crmops_lacks_is_the_workspaces(slack: FakeSlack) -> None:
    client = AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url)
    found = SlackLocales(client, default="id")
    assert await found.of_user("U0FR") == SlackPerson("id", ZoneInfo("Europe/Paris"))
    chinese = await found.of_user("U0NOTZ")  # any Chinese is zh-CN; a bad zone is unknown
    assert chinese == SlackPerson("zh-CN", None)
    assert found.channel == "id"


async def test_the_answer_is_cached_for_its_time(slack: FakeSlack) -> None:
    clock = Clock()
    found = locales(slack, clock, ttl=60)
    await found.of_user("U0ZH")
    clock.now += 59
    slack.users["U0ZH"]["locale"] = "id-ID"  # changed in Slack: seen once the hour is over
    assert (await found.of_user("U0ZH")).locale == "zh-CN"
    assert len(slack.calls_to("users.info")) == 1
    clock.now += 2
    assert (await found.of_user("U0ZH")).locale == "id"
    assert len(slack.calls_to("users.info")) == 2


async def test_the_cache_holds_at_most_max_users(slack: FakeSlack) -> None:
    found = locales(slack, max_users=2)
    for user in ("U0ZH", "U0ID", "U0ZH", "U0EN"):  # U0ZH asked again: U0ID is the oldest
        await found.of_user(user)
    assert len(found) == 2
    await found.of_user("U0ZH")
    assert len(slack.calls_to("users.info")) == 3  # U0ZH still remembered
    await found.of_user("U0ID")
    assert len(slack.calls_to("users.info")) == 4  # U0ID was forgotten


async def test_a_failed_lookup_answers_the_workspaces_and_asks_again_soon(
    slack: FakeSlack,
) -> None:
    clock = Clock()
    found = locales(slack, clock, ttl=3600, failed_ttl=30)
    assert await found.of_user("U0NOBODY") == SlackPerson("en")  # users.info: user_not_found
    assert await found.of_user("U0NOBODY") == SlackPerson("en")
    assert len(slack.calls_to("users.info")) == 1
    slack.users["U0NOBODY"] = {"locale": "zh-CN"}
    clock.now += 31
    assert (await found.of_user("U0NOBODY")).locale == "zh-CN"


async def test_a_wrong_token_answers_the_workspaces(slack: FakeSlack) -> None:
    client = AsyncWebClient(token="xoxb-wrong", base_url=slack.api_url)
    found = SlackLocales(client, default="zh-CN")
    assert await found.of_user("U0ID") == SlackPerson("zh-CN")


async def test_the_fake_answers_the_locale_only_when_asked(slack: FakeSlack) -> None:
    client = AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url)
    plain = await client.users_info(user="U0ID")
    assert "locale" not in plain["user"]
    assert plain["user"]["tz"] == "Asia/Jakarta"
    asked = await client.users_info(user="U0ID", include_locale=True)
    assert asked["user"]["locale"] == "id-ID"


def test_every_chinese_name_is_a_subcommand() -> None:
    assert set(CHINESE_SUBCOMMANDS.values()) <= set(SUBCOMMANDS)
    for name, english in {
        "错误": "error",
        "员工": "staff",
        "客户": "customer",
        "工单": "ticket",
        "导入": "import",
    }.items():
        assert subcommand_name(name) == english
    assert subcommand_name("STAFF") == "staff"
    assert subcommand_name(" 员工 ") == "staff"
    assert subcommand_name("unknown") == "unknown"
