"""The Slack bot in each user's language, over real HTTP: signed requests to the bot served
on loopback (as tests/bots do), a fake Slack that answers `users.info` with each user's
locale and time zone and records every answer, the simulators behind the tools.

A zh-CN user gets `/crm help`, an error lookup (`/crm errors 502`, `/crm 错误 502`), the
import modal and preview, and App Home in Chinese; an id-ID user in Indonesian; a post the
whole channel reads is in CRMOPS_LOCALE; a user Slack says nothing about, in English. The
`users.info` lookup never holds the ack."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from bots.app import ACK_BUDGET
from bots.fake_slack import FakeSlack
from bots.settings import AccessSettings
from tests.bots.conftest import (
    SlackEndpoint,
    audit_entries,
    endpoint,
    fake_slack,
    services,
    slack_settings,
    store,
)
from tests.bots.test_home import _open_home as open_home
from tests.bots.test_http import _confirmation_id, _text
from tests.bots.test_import import _submission
from tests.bots.test_ticket_modal import _message_shortcut
from tests.bots.test_ticket_modal import _submission as _modal_submission
from tests.bots.waiting import wait_until
from tests.sandbox_fixtures import Sandbox
from tools.i18n import Locale, current_locale
from tools.settings import CrmopsSettings, Settings
from tools.storage.store import Store

__all__ = ["endpoint", "fake_slack", "services", "slack_settings", "store"]

ZH = "U0ZHUSER"
ID = "U0IDUSER"
SILENT = "U0NOLOCALE"  # not in users.info: answered in the workspace's language
ZH_READER = "U0ZHREADER"  # reads in Chinese, may not write
WAIT = 20
CSV_MIME = "text/csv"


@pytest.fixture
def channel_locale() -> Locale:
    """CRMOPS_LOCALE of the bot under test (a test parametrizes it to change it)."""
    return "en"


@pytest.fixture
def settings(sandbox: Sandbox, channel_locale: Locale) -> Settings:
    return sandbox.settings(crmops=CrmopsSettings(locale=channel_locale))


@pytest.fixture(autouse=True)
def people(fake_slack: FakeSlack) -> None:
    fake_slack.users = {
        ZH: {"locale": "zh-CN", "tz": "Asia/Shanghai"},
        ID: {"locale": "id-ID", "tz": "Asia/Jakarta"},
        ZH_READER: {"locale": "zh-CN", "tz": "Asia/Shanghai"},
    }


@pytest.fixture
def access() -> AccessSettings:
    return AccessSettings(write_users=frozenset({ZH, ID}))


async def answer(endpoint: SlackEndpoint, text: str, *, user: str, hook: str) -> dict[str, Any]:
    """What `/crm text` from `user` answers: in the ack, or (when the ack only said it is
    working) the post to the command's `response_url` that follows."""
    response = await endpoint.command(text, user=user, hook=hook)
    assert response.status_code == 200
    acked: dict[str, Any] = response.json() if response.content else {}
    if acked.get("text") and acked["text"] != "Working on it…":
        return acked
    posts = endpoint.fake.hook_posts.setdefault(hook, [])
    await wait_until(lambda: bool(posts), within=WAIT)
    return posts[-1]


# --- /crm help ------------------------------------------------------------------------------


async def test_help_in_chinese(endpoint: SlackEndpoint) -> None:
    text = _text(await answer(endpoint, "help", user=ZH, hook="help"))
    assert "*crmops* — 在 Slack 中使用 SocialEpoch、小蓝本和帮我吧" in text
    assert "每个子命令的作用" in text
    assert "`/crm error <错误码或报错信息> [供应商]`" in text
    assert "示例:`/crm error 502 socialepoch`" in text
    assert "`错误` = `error`" in text
    assert "`员工` = `staff`" in text
    assert "Slack 不允许应用翻译斜杠命令和应用名称" in text
    assert "what each subcommand does" not in text
    assert endpoint.fake.calls_to("users.info")[0].data["user"] == ZH


async def test_help_in_indonesian(endpoint: SlackEndpoint) -> None:
    text = _text(await answer(endpoint, "help", user=ID, hook="help"))
    assert "kegunaan setiap subperintah" in text
    assert "Contoh: `/crm staff 王`" in text
    assert "Setiap subperintah juga punya nama Tionghoa" in text
    assert "Slack tidak mengizinkan aplikasi menerjemahkan perintah garis miring" in text


async def test_help_for_a_user_slack_says_nothing_about_is_english(
    endpoint: SlackEndpoint,
) -> None:
    text = _text(await answer(endpoint, "help", user=SILENT, hook="help"))
    assert "what each subcommand does" in text
    assert "Each subcommand also has a Chinese name: `帮助` = `help`" in text
    assert "Slack does not let an app translate its slash command or its name" in text


# --- /crm errors 502, /crm 错误 502 ------------------------------------------------------------


@pytest.mark.parametrize("command", ["errors 502", "错误 502", "error 502 socialepoch"])
async def test_an_error_lookup_in_chinese(endpoint: SlackEndpoint, command: str) -> None:
    text = _text(await answer(endpoint, command, user=ZH, hook="error"))
    assert "含义:请求时间戳超时" in text
    assert "处理方法:签名时间超出了供应商允许的时间窗口" in text
    assert "What to do" not in text


async def test_an_error_lookup_in_indonesian(endpoint: SlackEndpoint) -> None:
    text = _text(await answer(endpoint, "错误 502", user=ID, hook="error"))
    assert "Arti: Stempel waktu permintaan kedaluwarsa / 请求时间戳超时" in text
    assert "Yang harus dilakukan: Waktu yang ditandatangani" in text


async def test_a_mistyped_command_is_explained_in_chinese(endpoint: SlackEndpoint) -> None:
    text = _text(await answer(endpoint, "错误", user=ZH, hook="bad"))
    assert "请提供错误码或报错信息中的文字。" in text
    assert "用法:`/crm error &lt;错误码或报错信息&gt; [供应商]`" in text  # escaped for mrkdwn
    unknown = _text(await answer(endpoint, "frobnicate", user=ZH, hook="bad2"))
    assert "未知的子命令 `frobnicate`" in unknown


async def test_a_refused_write_is_explained_in_chinese_and_audited_in_english(
    endpoint: SlackEndpoint, store: Store
) -> None:
    text = _text(await answer(endpoint, 'ticket "打印机" "无法连接"', user=ZH_READER, hook="no"))
    assert "你没有权限使用 `/crm ticket`" in text
    [entry] = await audit_entries(store)
    assert entry.error == (
        "refused: You are not allowed to run `/crm ticket`; ask an admin to add you to its "
        "users or user groups."
    )


# --- /crm import: the modal and the preview ------------------------------------------------------


def _customers_csv(valid: int = 3) -> bytes:
    lines = ["客户名称,企业名称,联系人,手机号"]
    lines += [
        f"蓝本客户{n:02d},蓝本客户{n:02d}有限公司,王芳{n},1380013{n:04d}" for n in range(valid)
    ]
    lines.append(",没有客户名称的公司,李雷,13900139000")  # rejected: no customer name
    return ("\n".join(lines) + "\n").encode()


async def _preview(endpoint: SlackEndpoint, user: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Open the import modal as `user`, submit a file; the modal and the preview posted."""
    fake = endpoint.fake
    response = await endpoint.command("导入 xiaolanben", user=user, hook="cmd")
    assert response.status_code == 200
    await wait_until(lambda: bool(fake.calls_to("views.open")), within=WAIT)
    raw = fake.calls_to("views.open")[0].data["view"]
    view = json.loads(raw) if isinstance(raw, str) else dict(raw)
    file = fake.add_file("customers.csv", _customers_csv(), CSV_MIME)
    submitted = await endpoint.interaction(_submission(view, file, user))
    assert submitted.status_code == 200
    await wait_until(lambda: bool(fake.hook_posts.get("cmd")), within=WAIT)
    return view, fake.hook_posts["cmd"][0]


def _view_texts(view: dict[str, Any]) -> str:
    parts = [view["title"]["text"], view["submit"]["text"], view["close"]["text"]]
    for block in view["blocks"]:
        for key in ("label", "hint"):
            if key in block:
                parts.append(block[key]["text"])
        parts += [element["text"] for element in block.get("elements", []) if "text" in element]
        parts += [o["text"]["text"] for o in block.get("element", {}).get("options", [])]
    return "\n".join(parts)


async def test_the_import_modal_and_preview_in_chinese(
    endpoint: SlackEndpoint, sandbox: Sandbox
) -> None:
    view, preview = await _preview(endpoint, ZH)
    shown = _view_texts(view)
    for words in (
        "导入客户",
        "检查文件",
        "取消",
        "导入到",
        "客户文件(CSV 或 XLSX)",
        "小蓝本(B2B CRM)",
    ):
        assert words in shown
    assert "在预览中点击“导入”之前,不会导入任何数据。" in shown
    text = _text(preview)
    assert "*customers.csv* → 小蓝本(B2B CRM):共 4 行,3 行有效,1 行被拒绝。" in text
    assert "*被拒绝(不会导入):*" in text
    assert "第 5 行:customerName: 必填;请补上" in text  # the vendor check's reason too
    assert "导入 3 行" in text
    assert "下载被拒绝的行(CSV)" in text
    assert "valid row" not in text
    assert sandbox.xiaolanben.customers == {}


async def test_the_import_preview_in_indonesian(endpoint: SlackEndpoint) -> None:
    view, preview = await _preview(endpoint, ID)
    assert view["title"]["text"] == "Impor pelanggan"
    text = _text(preview)
    assert "3 baris valid, 1 ditolak dari 4." in text
    assert "*Ditolak (tidak diimpor):*" in text
    assert "baris 5: customerName: wajib diisi; tambahkan" in text
    assert "Impor 3 baris" in text


# --- a post the whole channel reads: CRMOPS_LOCALE ---------------------------------------------


@pytest.mark.parametrize("channel_locale", ["id"])
async def test_a_channel_post_is_in_crmops_locale(endpoint: SlackEndpoint) -> None:
    ask = await answer(endpoint, 'ticket "无法登录" "客户说登录页报错 502"', user=ZH, hook="ask")
    assert "要创建这张帮我吧工单吗?" in _text(ask)  # only the asker sees it: their language
    await endpoint.press("crm_confirm", _confirmation_id(ask), user=ZH, hook="run")
    posts = endpoint.fake.hook_posts.setdefault("run", [])
    await wait_until(
        lambda: any("#" in _text(p) and "已创建工单" in _text(p) for p in posts), within=WAIT
    )
    in_channel = [post for post in posts if post.get("response_type") == "in_channel"]
    assert len(in_channel) == 1
    announced = _text(in_channel[0])
    assert f"<@{ZH}> membuat tiket Bangwo8" in announced
    assert "创建" not in announced
    mine = [_text(post) for post in posts if post.get("response_type") != "in_channel"]
    assert any("正在创建工单…" in text for text in mine)


# --- App Home, and times in the user's zone ------------------------------------------------------


async def test_app_home_in_chinese(endpoint: SlackEndpoint) -> None:
    view = await open_home(endpoint, ZH)
    shown = json.dumps(view, ensure_ascii=False)
    for words in ("新建工单", "导入客户", "*你最近的导入*", "*你最近在 crmops 中创建的工单*"):
        assert words in shown
    assert "New ticket" not in shown


async def test_ticket_times_are_in_the_users_zone(
    endpoint: SlackEndpoint, sandbox: Sandbox
) -> None:
    sandbox.bangwo8.seed()
    zh = _text(await answer(endpoint, "工单列表", user=ZH, hook="zh"))
    jakarta = _text(await answer(endpoint, "tickets", user=ID, hook="id"))
    assert "帮我吧工单共" in zh
    shanghai = re.findall(r"创建于 (\d{4}-\d\d-\d\d \d\d:\d\d) UTC\+08:00", zh)
    jakarta_times = re.findall(r"dibuat (\d{4}-\d\d-\d\d \d\d:\d\d) UTC\+07:00", jakarta)
    assert shanghai
    # The same moments, each on its own zone's clock.
    assert [_at(t, 8) for t in shanghai] == [_at(t, 7) for t in jakarta_times]


def _at(shown: str, hours: int) -> datetime:
    return datetime.fromisoformat(shown).replace(tzinfo=timezone(timedelta(hours=hours)))


# --- the lookup never holds the ack ------------------------------------------------------------


async def test_a_slow_users_info_never_holds_the_ack(endpoint: SlackEndpoint) -> None:
    slow = endpoint.fake.delays["users.info"] = 0.8  # past the ack budget, within LOOKUP_WAIT
    started = time.monotonic()
    response = await endpoint.command("help", user=ZH, hook="slow")
    took = time.monotonic() - started
    assert response.status_code == 200
    assert ACK_BUDGET <= took < slow, took  # the ack did not wait for users.info
    assert response.json()["text"] == "Working on it…"  # the workspace's language
    posts = endpoint.fake.hook_posts.setdefault("slow", [])
    await wait_until(lambda: bool(posts), within=WAIT)
    assert "每个子命令的作用" in _text(posts[-1])  # then the user's
    # Remembered: the next command is answered in Chinese at once, without asking Slack.
    again = await endpoint.command("help", user=ZH, hook="fast")
    assert "每个子命令的作用" in _text(again.json())
    assert len(endpoint.fake.calls_to("users.info")) == 1
    assert current_locale() == "en"  # nothing leaked into the test's own context


# --- the ticket modal ----------------------------------------------------------------------------


async def test_the_ticket_modal_and_its_errors_in_chinese(endpoint: SlackEndpoint) -> None:
    view = await _message_shortcut(endpoint, user=ZH, text="无法登录\n客户说登录页报错 502")
    assert view["title"]["text"] == "创建工单"
    assert view["submit"]["text"] == "创建"
    labels = [block["label"]["text"] for block in view["blocks"] if block["type"] == "input"]
    assert labels[:3] == ["标题", "客户的留言(第一条回复)", "优先级"]
    assert "工单号会发布在该消息的话题中。" in json.dumps(view, ensure_ascii=False)
    response = await endpoint.interaction(
        _modal_submission(view, user=ZH, subject="   ", custom_fields="没有等号")
    )
    errors = response.json()["errors"]
    assert errors["subject"] == "不能为空:请给工单一个标题(1-255 个字符)"
    assert errors["custom_fields"] == "第 1 行:请写成 `key = value`(收到了 `没有等号`)"
