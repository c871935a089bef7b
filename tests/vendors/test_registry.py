"""The vendor registry: one row per vendor, and every place that lists vendors reads it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from tests.sandbox_fixtures import Sandbox, unconfigured_settings
from tools.catalog import DISPLAY_NAMES, VENDORS, load_catalog
from tools.doctor import diagnose_settings
from tools.services import Services
from tools.settings import CrmopsSettings, Settings
from tools.storage.shared import SharedState
from tools.vendors.registry import BANGWO8, REGISTRY, SOCIALEPOCH, XIAOLANBEN, vendor_row

ROOT = Path(__file__).resolve().parents[2]
# The modules allowed to name every vendor: the light list and the registry.
NAMES_EVERY_VENDOR = {"tools/catalog.py", "tools/vendors/registry.py"}


def test_the_registry_names_the_light_list_in_its_order() -> None:
    assert tuple(row.name for row in REGISTRY) == VENDORS
    assert (SOCIALEPOCH, XIAOLANBEN, BANGWO8) == REGISTRY
    assert {row.name: row.display_name for row in REGISTRY} == DISPLAY_NAMES
    assert all(vendor_row(row.name) is row for row in REGISTRY)
    with pytest.raises(KeyError):
        vendor_row("redis")


def test_settings_has_one_attribute_per_row_of_its_class() -> None:
    vendors: dict[str, type[BaseSettings]] = {row.name: row.settings for row in REGISTRY}
    assert Settings.parts() == {"crmops": CrmopsSettings, **vendors}


def test_each_vendor_variables_start_with_its_upper_case_name() -> None:
    # The transport names `{VENDOR}_BASE_URL` in its advice from the vendor's name alone.
    for row in REGISTRY:
        assert row.env_prefix == f"{row.name.upper()}_"
        assert "base_url" in row.settings.model_fields


def test_the_error_catalog_has_a_table_for_each_vendor() -> None:
    documented = {entry.vendor for entry in load_catalog().entries}
    assert documented == set(VENDORS)


async def test_services_make_each_client_from_its_row(sandbox: Sandbox) -> None:
    async with Services(sandbox.settings()) as services:
        made = {row.name: services.client(row) for row in REGISTRY}
        assert made["socialepoch"] is services.socialepoch
        assert made["xiaolanben"] is services.xiaolanben
        assert made["bangwo8"] is services.bangwo8


async def test_each_probe_answers_against_the_sandbox(sandbox: Sandbox) -> None:
    async with Services(sandbox.settings()) as services:
        for row in REGISTRY:
            assert (await row.probe(services.client(row))).startswith("answered")


async def test_the_doctor_checks_every_row_in_order() -> None:
    report = await diagnose_settings(unconfigured_settings())
    assert [check.vendor for check in report.checks] == list(VENDORS)
    assert {check.status for check in report.checks} == {"not_configured"}


def test_shared_limits_are_per_row_tenant_and_rate(sandbox: Sandbox) -> None:
    crmops = CrmopsSettings(redis_url=SecretStr("redis://127.0.0.1:9/0"))  # never connected
    settings = sandbox.settings(crmops)
    shared = SharedState(settings)
    for row in REGISTRY:
        limiter = shared.rate_limiter(row.name)
        assert limiter is not None
        own = row.settings_of(settings)
        assert getattr(limiter, "rate", None) == own.rate_limit * crmops.rate_headroom
    assert shared.token_cache("bangwo8") is not None


def test_no_other_module_lists_every_vendor() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("tools", "server", "bots")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if str(path.relative_to(ROOT)) not in NAMES_EVERY_VENDOR
        and set(VENDORS) <= _string_literals(path)
    ]
    assert offenders == []


def _string_literals(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }
