"""The two token schemes: documented vectors, our own, and the signers on real requests."""

from __future__ import annotations

import json
from datetime import UTC

import httpx
import pytest
from pydantic import SecretStr

from tools.vendors.socialepoch.auth import (
    SocialEpochHeaderAuth,
    SocialEpochLegacyAuth,
    format_create_time,
    header_token,
    legacy_token,
)

DOC_KEY = "QOEAcPj6Tb8XRhwFvYih"
# 2023-06-01 12:12:12 in UTC+8
DOC_CREATE_TIME_EPOCH = 1685592732.0


def test_legacy_token_matches_the_documented_sample() -> None:
    token = legacy_token("1", "WhatsApp", "2023-06-01 12:12:12", DOC_KEY)
    assert token == "d5b3aedbd8fad73eb71016d2dc5450eb"


def test_legacy_token_keeps_leading_zeros() -> None:
    # A digest starting "000": a BigInteger-style hex without padding would be 29 chars.
    token = legacy_token("1", "WhatsApp", "2023-06-01 04:28:59", DOC_KEY)
    assert token == "000dce529d59729f6e9a065b90ddb260"
    assert len(token) == 32


@pytest.mark.parametrize(
    ("user_name", "expected"),
    [
        ("客服主管", "191e128e9f917448ad1a98576760b59f"),
        ("José Ñúñez", "1df690725677eebc144e94895ed70e51"),
        ("WhatsApp😀", "1ee91a7feaa8532aac4ebc3ca38e0b9c"),
    ],
)
def test_legacy_token_hashes_utf8(user_name: str, expected: str) -> None:
    assert legacy_token("1", user_name, "2023-06-01 12:12:12", DOC_KEY) == expected


def test_legacy_token_is_not_the_gbk_digest() -> None:
    # The Java sample's getBytes() uses the platform charset; on a GBK Windows box it gives this.
    assert legacy_token("1", "客服主管", "2023-06-01 12:12:12", DOC_KEY) != (
        "03be9a3a3d89176fdd6d74c3f790bcef"
    )


def test_header_token_vectors() -> None:
    assert header_token("1", "1710936559123", DOC_KEY) == "e1aa29e0985905cfb15a84e71a2a6cc1"
    assert header_token("1", "1710936559563", DOC_KEY) == "009fd93e4984f735c00f9014b983b4f8"


def test_create_time_is_wall_clock_in_the_zone() -> None:
    assert format_create_time(DOC_CREATE_TIME_EPOCH) == "2023-06-01 12:12:12"
    assert format_create_time(DOC_CREATE_TIME_EPOCH, UTC) == "2023-06-01 04:12:12"


def _echo(request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        200, json={"headers": dict(request.headers), "body": request.content.decode()}
    )


async def test_header_auth_sets_the_three_headers() -> None:
    auth = SocialEpochHeaderAuth(
        tenant_id="1", api_key=SecretStr(DOC_KEY), clock=lambda: 1710936559.123
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(_echo), auth=auth) as http:
        echoed = (await http.post("http://vendor/x", json=[{"whatsApp": "15266667779"}])).json()
    headers = echoed["headers"]
    assert headers["tenant_id"] == "1"
    assert headers["timestamp"] == "1710936559123"
    assert headers["token"] == "e1aa29e0985905cfb15a84e71a2a6cc1"


async def test_legacy_auth_signs_the_body_in_the_sample_key_order() -> None:
    auth = SocialEpochLegacyAuth(api_key=SecretStr(DOC_KEY), clock=lambda: DOC_CREATE_TIME_EPOCH)
    sent = {
        "tenantId": "1",
        "userName": "WhatsApp",
        "data": [{"whatsApp": "15266667779", "friendName": "李雷"}],
    }
    async with httpx.AsyncClient(transport=httpx.MockTransport(_echo), auth=auth) as http:
        echoed = (await http.put("http://vendor/import", content=json.dumps(sent))).json()
    body = echoed["body"]
    assert body == (
        '{"tenantId":"1","userName":"WhatsApp","data":[{"whatsApp":"15266667779",'
        '"friendName":"李雷"}],"token":"d5b3aedbd8fad73eb71016d2dc5450eb",'
        '"createTime":"2023-06-01 12:12:12"}'
    )
    assert echoed["headers"]["content-length"] == str(len(body.encode("utf-8")))


def test_signers_do_not_show_the_key() -> None:
    header = SocialEpochHeaderAuth(tenant_id="1", api_key=SecretStr(DOC_KEY))
    legacy = SocialEpochLegacyAuth(api_key=SecretStr(DOC_KEY))
    assert DOC_KEY not in repr(header)
    assert DOC_KEY not in repr(legacy)
