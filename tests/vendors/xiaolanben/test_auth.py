"""The signer against hand-written pre-images (003 `SignUtil`), and what it puts on the wire.

Every expected signature here is `md5(<string written out by hand>)`, never a call to the
code under test.
"""

from __future__ import annotations

import hashlib
import json
import threading
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from pydantic import SecretStr

from tests.vendors.xiaolanben.conftest import Recorder
from tools.vendors.xiaolanben.auth import (
    MillisecondTicker,
    XiaolanbenAuth,
    is_java_blank,
    java_order,
    sign,
)
from tools.vendors.xiaolanben.models import DuplicateControl, ImportFlags

KEY = "xxxxxx-xxxxxx-xxxxxx"
T = 1704083435345  # 003: 2024-01-01 12:30:35.345 (UTC+8)

# The body of 003's Java example, as Jackson writes it (compact, Chinese kept).
DOC_BODY = json.dumps(
    {
        "customerName": "鲍哥2024测试1",
        "tag": "未分组",
        "customizeField.text_13": "测试13",
        "customizeField.bool_5": True,
        "contacts": [{"thirdDataId": "u1", "name": "联系人1", "phone": "13909876543"}],
    },
    ensure_ascii=False,
    separators=(",", ":"),
)


def md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def test_doc_example_params_with_a_chinese_json_body() -> None:
    params = {
        "checkKeepLimit": "true",
        "autoUnlock": "false",
        "duplicateControl": "CUSTOMER_PHONE_DUPLICATE_FAIL",
    }
    preimage = (
        "autoUnlock=false&checkKeepLimit=true&duplicateControl=CUSTOMER_PHONE_DUPLICATE_FAIL"
        + DOC_BODY
        + "1704083435345"
        + KEY
    )
    assert sign(KEY, params, DOC_BODY, T) == md5(preimage)


def test_get_without_params_or_body_signs_time_and_key_only() -> None:
    assert sign(KEY, {}, None, T) == md5("1704083435345" + KEY)
    assert sign(KEY, {}, "", T) == md5("1704083435345" + KEY)


def test_signature_is_32_lowercase_hex() -> None:
    signature = sign(KEY, {"a": "1"}, None, T)
    assert len(signature) == 32
    assert signature == signature.lower()
    int(signature, 16)


def test_multi_values_drop_empties_sort_and_join_with_commas() -> None:
    params = {"tag": ["b", "", "a", "c"], "pageIndex": "1"}
    assert sign(KEY, params, None, T) == md5("pageIndex=1&tag=a,b,c" + "1704083435345" + KEY)


def test_unicode_query_value_is_signed_raw_not_url_encoded() -> None:
    params = {"search": "王 芳&x=1%"}
    assert sign(KEY, params, None, T) == md5("search=王 芳&x=1%" + "1704083435345" + KEY)


def test_booleans_are_signed_as_java_writes_them() -> None:
    flags = ImportFlags(
        check_keep_limit=True,
        auto_draw=False,
        duplicate_control=DuplicateControl.CUSTOMER_PHONE_DUPLICATE_IGNORE,
    )
    params = flags.as_params()
    assert params == {
        "checkKeepLimit": "true",
        "autoDraw": "false",
        "duplicateControl": "CUSTOMER_PHONE_DUPLICATE_IGNORE",
    }
    preimage = "autoDraw=false&checkKeepLimit=true&duplicateControl=CUSTOMER_PHONE_DUPLICATE_IGNORE"
    assert sign(KEY, params, "{}", T) == md5(preimage + "{}" + "1704083435345" + KEY)


@pytest.mark.parametrize("body", [" ", "\n\t \r", "\u3000", "\u2028\u001f"])
def test_a_whitespace_only_body_is_blank_and_left_out(body: str) -> None:
    assert sign(KEY, {"a": "1"}, body, T) == md5("a=1" + "1704083435345" + KEY)


@pytest.mark.parametrize("body", ["\u00a0", "\u2007", "\u202f", "\x85"])
def test_no_break_spaces_are_not_java_whitespace_so_the_body_is_signed(body: str) -> None:
    assert sign(KEY, {}, body, T) == md5(body + "1704083435345" + KEY)


def test_astral_keys_sort_in_utf16_order_not_code_point_order() -> None:
    # U+1F600 is the surrogate pair D83D DE00 in Java, which sorts before U+FF21 (Ａ);
    # by code point it would come after.
    params = {"\uff21": "2", "\U0001f600": "1", "z": "3"}
    expected = "z=3&\U0001f600=1&\uff21=2"
    assert sign(KEY, params, None, T) == md5(expected + "1704083435345" + KEY)
    assert sorted(params) != sorted(params, key=java_order)


def test_astral_multi_values_sort_in_utf16_order() -> None:
    params = {"v": ["\uff21", "\U0001f600"]}
    assert sign(KEY, params, None, T) == md5("v=\U0001f600,\uff21" + "1704083435345" + KEY)


def test_signature_params_are_never_signed() -> None:
    params = {"h_t": "1", "h_sign": "abc", "a": "1"}
    assert sign(KEY, params, None, T) == md5("a=1" + "1704083435345" + KEY)


def test_an_empty_value_signs_as_key_equals_like_signutil() -> None:
    # 003's SignUtil keeps the key with an empty value; XiaolanbenAuth never sends one.
    assert sign(KEY, {"a": "", "b": "1"}, None, T) == md5("a=&b=1" + "1704083435345" + KEY)


def test_java_blank_follows_character_is_whitespace() -> None:
    assert is_java_blank(None)
    assert is_java_blank("")
    assert is_java_blank(" \t\u3000")
    assert not is_java_blank("\u00a0")
    assert not is_java_blank(" x ")


# --- the httpx.Auth on real requests -------------------------------------------------------


async def send_recorded(
    auth: XiaolanbenAuth, method: str, url: str, **kwargs: object
) -> httpx.Request:
    recorder = Recorder()
    async with httpx.AsyncClient(transport=httpx.MockTransport(recorder), auth=auth) as http:
        await http.request(method, url, **kwargs)  # type: ignore[arg-type]
    [request] = recorder.requests
    return request


def query_pairs(request: httpx.Request) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(str(request.url)).query, keep_blank_values=True)


async def test_auth_signs_the_query_and_body_as_sent() -> None:
    auth = XiaolanbenAuth(SecretStr(KEY), clock=lambda: T / 1000)
    body = '{"customerName":"蓝本科技"}'.encode()
    request = await send_recorded(
        auth,
        "POST",
        "http://sim/p",
        params={"b": "2", "c": ["y", "x"], "s": "王 芳+1"},
        content=body,
    )
    pairs = dict(query_pairs(request))
    assert pairs["h_t"] == str(T)
    preimage = "b=2&c=x,y&s=王 芳+1" + '{"customerName":"蓝本科技"}' + str(T) + KEY
    assert pairs["h_sign"] == md5(preimage)


async def test_auth_never_sends_an_empty_parameter() -> None:
    auth = XiaolanbenAuth(SecretStr(KEY), clock=lambda: T / 1000)
    request = await send_recorded(
        auth, "GET", "http://sim/p", params={"a": "", "b": "1", "c": ["", "x"], "d": []}
    )
    pairs = query_pairs(request)
    assert [name for name, _ in pairs] == ["b", "c", "h_t", "h_sign"]
    assert all(value for _, value in pairs)
    assert dict(pairs)["h_sign"] == md5("b=1&c=x" + str(T) + KEY)


async def test_auth_replaces_stale_signature_params() -> None:
    auth = XiaolanbenAuth(SecretStr(KEY), clock=lambda: T / 1000)
    request = await send_recorded(auth, "GET", "http://sim/p?h_t=1&h_sign=old&a=1")
    pairs = query_pairs(request)
    assert [name for name, _ in pairs] == ["a", "h_t", "h_sign"]
    assert dict(pairs)["h_sign"] == md5("a=1" + str(T) + KEY)


async def test_same_millisecond_requests_get_distinct_h_t() -> None:
    auth = XiaolanbenAuth(SecretStr(KEY), clock=lambda: T / 1000)
    first = dict(query_pairs(await send_recorded(auth, "GET", "http://sim/p")))
    second = dict(query_pairs(await send_recorded(auth, "GET", "http://sim/p")))
    assert (int(first["h_t"]), int(second["h_t"])) == (T, T + 1)
    assert first["h_sign"] != second["h_sign"]


def test_ticker_is_strictly_increasing_across_threads() -> None:
    ticker = MillisecondTicker(lambda: T / 1000)
    seen: list[int] = []
    lock = threading.Lock()

    def take() -> None:
        values = [ticker.next() for _ in range(200)]
        with lock:
            seen.extend(values)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(seen) == list(range(T, T + 1600))


def test_ticker_follows_the_clock_when_it_moves_on() -> None:
    now = [T / 1000]
    ticker = MillisecondTicker(lambda: now[0])
    assert ticker.next() == T
    now[0] += 5
    assert ticker.next() == T + 5000


def test_the_key_is_not_in_the_auth_repr() -> None:
    auth = XiaolanbenAuth(SecretStr(KEY))
    assert KEY not in repr(auth)
    assert KEY not in str(vars(auth))
