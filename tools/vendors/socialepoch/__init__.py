"""SocialEpoch (WhatsApp SCRM): signed client, wire models, error mapping."""

from tools.vendors.socialepoch.auth import (
    SocialEpochHeaderAuth,
    SocialEpochLegacyAuth,
    header_token,
    legacy_token,
)
from tools.vendors.socialepoch.client import SocialEpochClient
from tools.vendors.socialepoch.errors import check_answer
from tools.vendors.socialepoch.models import (
    CustomerRecord,
    SocialEpochCustomer,
    normalize_whatsapp,
    validate_customers,
)

__all__ = [
    "CustomerRecord",
    "SocialEpochClient",
    "SocialEpochCustomer",
    "SocialEpochHeaderAuth",
    "SocialEpochLegacyAuth",
    "check_answer",
    "header_token",
    "legacy_token",
    "normalize_whatsapp",
    "validate_customers",
]
