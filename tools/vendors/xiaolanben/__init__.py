"""Xiaolanben (小蓝本 blue-crm open API): signer, wire models, client (003)."""

from tools.vendors.xiaolanben.auth import XiaolanbenAuth, sign
from tools.vendors.xiaolanben.client import (
    IMPORT_CUSTOMER,
    IMPORT_CUSTOMERS,
    LIST_STAFF,
    XiaolanbenClient,
)
from tools.vendors.xiaolanben.errors import check_answer
from tools.vendors.xiaolanben.models import (
    DuplicateControl,
    ImportFlags,
    ImportResult,
    Staff,
    XiaolanbenContact,
    XiaolanbenCustomer,
    validate_customer,
    validate_customers,
)

__all__ = [
    "IMPORT_CUSTOMER",
    "IMPORT_CUSTOMERS",
    "LIST_STAFF",
    "DuplicateControl",
    "ImportFlags",
    "ImportResult",
    "Staff",
    "XiaolanbenAuth",
    "XiaolanbenClient",
    "XiaolanbenContact",
    "XiaolanbenCustomer",
    "check_answer",
    "sign",
    "validate_customer",
    "validate_customers",
]
