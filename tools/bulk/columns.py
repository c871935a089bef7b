"""Which vendor field each input column fills::

    columns = ColumnMap("xiaolanben", {"公司": "customerName"})
    columns.record({"公司": "蓝本科技", "联系人": "王芳", "手机号": "13800138001"})
    # {"customerName": "蓝本科技", "contacts": [{"name": "王芳", "phone": "13800138001"}]}

A column is matched, in this order, by the `mapping` given (header → field), the vendor's
field name (`friendName`), its snake_case name (`friend_name`; case, spaces, `_` and `-` do
not matter), or a common Chinese header (`手机号`, `客户名称`, `企业名称`, `联系人`, ...).
Xiaolanben contact fields are `contact.<field>` (the first contact), `contact2.<field>` (the
second), or `contacts[1].<field>`; a bare contact field (`phone`) and the Chinese contact
headers fill the first contact.
A SocialEpoch column that matches nothing is a tenant extended field (000), sent as named;
a Xiaolanben one is an error (`unknown_columns`). An input whose columns that match nothing
number more than `MAX_UNMATCHED_COLUMNS` is refused (`InputError`); each header is resolved
once, so a map costs one dict look-up a cell.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel

from tools.errors import InputError, Problem
from tools.i18n import marked, tr
from tools.vendors.socialepoch.models import SocialEpochCustomer
from tools.vendors.xiaolanben.models import XiaolanbenContact, XiaolanbenCustomer, is_custom_field

BulkVendor = Literal["socialepoch", "xiaolanben"]
Target = tuple[str] | tuple[str, int, str]
"""`("friendName",)` for a record field, `("contacts", 0, "phone")` for a contact's."""

CONTACTS = "contacts"
MAX_UNMATCHED_COLUMNS = 200
"""Different columns (keys) matching no field that one input may have, all rows together.
SocialEpoch sends each as a tenant extended field, which a tenant configures in its admin
console (000; at most `MAX_EXTENDED_FIELDS` a customer): more are a mistake, not data."""

SOCIALEPOCH_CHINESE: dict[str, str] = {
    **dict.fromkeys(
        ("手机号", "手机", "手机号码", "电话", "WhatsApp号码", "WhatsApp号", "WhatsApp账号"),
        "whatsApp",
    ),
    **dict.fromkeys(
        ("姓名", "名字", "客户名称", "客户姓名", "好友名称", "昵称", "联系人"), "friendName"
    ),
    "性别": "sex",
    **dict.fromkeys(("生日", "出生日期"), "birthday"),
    **dict.fromkeys(("地址", "联系地址"), "address"),
    **dict.fromkeys(("邮箱", "电子邮箱", "邮件"), "email"),
    "职业": "profession",
    "收入": "income",
    **dict.fromkeys(("备注", "描述"), "desc"),
    **dict.fromkeys(("标签", "客户标签"), "tabName"),
    "取消标签": "cancelTabName",
    **dict.fromkeys(("阶段", "客户阶段"), "stage"),
    **dict.fromkeys(("来源", "客户来源"), "source"),
    **dict.fromkeys(("语言", "语言标签"), "languageTag"),
    "欢迎语": "welcome",
    **dict.fromkeys(("坐席", "坐席账号", "归属坐席", "负责人"), "agentAccount"),
}
XIAOLANBEN_CHINESE: dict[str, str] = {
    **dict.fromkeys(("客户名称", "客户名", "公司名称"), "customerName"),
    **dict.fromkeys(("企业名称", "企业全称", "工商名称"), "entName"),
    **dict.fromkeys(("负责人ID", "员工ID", "归属员工ID"), "staffId"),
    **dict.fromkeys(("客户来源", "来源"), "customerSource"),
    "公海ID": "publicSeaId",
    **dict.fromkeys(("客户分组", "分组"), "tag"),
}
XIAOLANBEN_CONTACT_CHINESE: dict[str, str] = {
    **dict.fromkeys(("联系人", "联系人姓名", "姓名"), "name"),
    "职位": "position",
    "部门": "dept",
    **dict.fromkeys(("手机号", "手机", "手机号码", "联系人手机"), "phone"),
    **dict.fromkeys(("电话", "座机", "固定电话"), "tel"),
    **dict.fromkeys(("邮箱", "电子邮箱"), "email"),
    **dict.fromkeys(("地址", "联系地址"), "addr"),
    **dict.fromkeys(("微信", "微信号"), "wechat"),
    "QQ": "qq",
    "性别": "gender",
    "生日": "birthday",
    "备注": "remark",
    **dict.fromkeys(("联系人ID", "第三方ID"), "thirdDataId"),
}

# Values people write that the vendor spells differently (000 sex; 003 gender).
_VALUES: dict[tuple[BulkVendor, str], dict[str, str]] = {
    ("socialepoch", "sex"): {"男": "male", "女": "female", "未知": "unknown"},
    ("xiaolanben", "gender"): {"male": "男", "female": "女", "unknown": "未知"},
}
_CONTACT_PREFIX = re.compile(
    r"^(?:contacts\[(?P<index>\d+)\]|contact(?P<nth>\d*))[._ ](?P<field>.+)$", re.IGNORECASE
)


def _normal(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name).lower()


def _names(model: type[BaseModel]) -> dict[str, str]:
    """Normalised vendor and snake_case names → the vendor's field name."""
    names: dict[str, str] = {}
    for field_name, info in model.model_fields.items():
        vendor_name = info.alias or field_name
        names[_normal(field_name)] = vendor_name
        names[_normal(vendor_name)] = vendor_name
    return names


_RECORD_NAMES: dict[BulkVendor, dict[str, str]] = {
    "socialepoch": _names(SocialEpochCustomer),
    "xiaolanben": {k: v for k, v in _names(XiaolanbenCustomer).items() if v != CONTACTS},
}
_CONTACT_NAMES = _names(XiaolanbenContact)


class ColumnMap:
    """Turns a row's cells (header → value) into a record in the vendor's field names."""

    def __init__(self, vendor: BulkVendor, mapping: Mapping[str, str] | None = None) -> None:
        self.vendor = vendor
        self.mapping = dict(mapping or {})
        self._targets: dict[str, Target | None] = {}
        self.unmatched: list[str] = []
        """The headers met so far that match no field, each once, in the order met."""

    def target(self, header: str) -> Target | None:
        """The field `header` fills, or None when it matches none; `InputError` when it is
        one column too many that matches none (`MAX_UNMATCHED_COLUMNS`)."""
        if header in self._targets:
            return self._targets[header]
        found = self._resolve(self.mapping.get(header, header))
        if found is None:
            self._unmatched(header)
        self._targets[header] = found
        return found

    def unknown_columns(self, headers: Iterable[str]) -> list[str]:
        """The headers that match no field (SocialEpoch sends them as extended fields)."""
        return [header for header in headers if self.target(header) is None]

    def record(self, cells: Mapping[str, Any]) -> dict[str, Any]:
        """The record `cells` make; unmatched columns keep their header as the key."""
        record: dict[str, Any] = {}
        contacts: dict[int, dict[str, Any]] = {}
        for header, value in cells.items():
            target = self.target(header)
            if target is None:
                record[header] = value
            elif len(target) == 1:
                record[target[0]] = self._value(target[0], value)
            else:
                contacts.setdefault(target[1], {})[target[2]] = self._value(target[2], value)
        if contacts:
            given = record.get(CONTACTS)
            listed = list(given) if isinstance(given, list) else []
            listed += [contacts[index] for index in sorted(contacts)]
            record[CONTACTS] = listed
        return record

    def _unmatched(self, header: str) -> None:
        if len(self.unmatched) >= MAX_UNMATCHED_COLUMNS:
            shown = ", ".join(repr(name) for name in self.unmatched[:5])
            raise InputError(
                [
                    Problem(
                        "columns",
                        tr(
                            "more than {most} different columns match no field ({shown}, ...): "
                            "rename them to field names, map them (--map 'HEADER=FIELD') or "
                            "leave them out",
                            most=MAX_UNMATCHED_COLUMNS,
                            shown=shown,
                        ),
                    )
                ],
                summary=marked("too many unknown columns"),
            )
        self.unmatched.append(header)

    def _value(self, field: str, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            if field == "tagIds":
                return [part.strip() for part in value.split(",") if part.strip()]
            return _VALUES.get((self.vendor, field), {}).get(value, value)
        return value

    def _resolve(self, name: str) -> Target | None:
        if self.vendor == "xiaolanben" and is_custom_field(name):
            return (name,)
        if name == CONTACTS and self.vendor == "xiaolanben":
            return (CONTACTS,)
        found = _RECORD_NAMES[self.vendor].get(_normal(name))
        if found is not None:
            return (found,)
        if self.vendor == "socialepoch":
            chinese = SOCIALEPOCH_CHINESE.get(name.strip())
            return None if chinese is None else (chinese,)
        return self._resolve_xiaolanben(name.strip())

    def _resolve_xiaolanben(self, name: str) -> Target | None:
        if name in XIAOLANBEN_CHINESE:
            return (XIAOLANBEN_CHINESE[name],)
        if name in XIAOLANBEN_CONTACT_CHINESE:
            return (CONTACTS, 0, XIAOLANBEN_CONTACT_CHINESE[name])
        match = _CONTACT_PREFIX.match(name)
        if match is None:
            # A contact's field named bare (`phone`, `wechat`) can only mean the first contact.
            bare = _CONTACT_NAMES.get(_normal(name))
            return None if bare is None else (CONTACTS, 0, bare)
        field = _CONTACT_NAMES.get(_normal(match["field"]))
        if field is None:
            return None
        if match["index"] is not None:
            return (CONTACTS, int(match["index"]), field)
        nth = int(match["nth"] or 1)
        return None if nth < 1 else (CONTACTS, nth - 1, field)
