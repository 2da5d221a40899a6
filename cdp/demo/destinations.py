"""Sync the golden records to local emulators of HubSpot, Salesforce, Braze and a webhook (plus a
Parquet export), twice: the first run sends everything, the second sends nothing."""

from __future__ import annotations

import os
from contextlib import ExitStack

from cdp.ingest.enrichment import KEY_ENV, URL_ENV
from cdp.ingest.firmographics_emulator import FirmographicsEmulator
from reverse_etl.emulators.braze import BrazeEmulator
from reverse_etl.emulators.hubspot import HubSpotEmulator
from reverse_etl.emulators.salesforce import SalesforceEmulator
from reverse_etl.emulators.webhook import WebhookEmulator

DEMO_TOKEN = "demo-token"  # the emulators' own credential, not a real secret


def start_emulators(stack: ExitStack) -> dict:
    emulators = {
        "hubspot": stack.enter_context(HubSpotEmulator(token=DEMO_TOKEN)),
        "salesforce": stack.enter_context(SalesforceEmulator(token=DEMO_TOKEN)),
        "braze": stack.enter_context(BrazeEmulator(token=DEMO_TOKEN)),
        "webhook": stack.enter_context(WebhookEmulator(secret="whsec_demo")),
    }
    os.environ.update(
        {
            "HUBSPOT_BASE_URL": emulators["hubspot"].url,
            "HUBSPOT_TOKEN": DEMO_TOKEN,
            "SALESFORCE_INSTANCE_URL": emulators["salesforce"].url,
            "SALESFORCE_TOKEN": DEMO_TOKEN,
            "BRAZE_REST_ENDPOINT": emulators["braze"].url,
            "BRAZE_API_KEY": DEMO_TOKEN,
            "WEBHOOK_URL": emulators["webhook"].url,
            "WEBHOOK_SECRET": "whsec_demo",
        }
    )
    return emulators


def start_enrichment_emulator(stack: ExitStack) -> FirmographicsEmulator:
    emulator = stack.enter_context(FirmographicsEmulator(token=DEMO_TOKEN))
    os.environ.update({URL_ENV: emulator.url, KEY_ENV: DEMO_TOKEN})
    return emulator


def received(emulators: dict) -> dict[str, int]:
    """What each emulator now holds."""
    return {
        "hubspot contacts": len(emulators["hubspot"].live_contacts()),
        "salesforce contacts": len(emulators["salesforce"].records),
        "braze users": len(emulators["braze"].users),
        "webhook records": len(emulators["webhook"].records),
    }
