"""The demo's stand-ins: every destination with an HTTP emulator in its folder gets one, started
on a free port with the demo's credential, and the destination's environment variables point at
it; the firmographics API the enrichment asks gets one too."""

from __future__ import annotations

import os
from contextlib import ExitStack

from cdp.core.emulator import Emulator
from cdp.ingest.enrichment import KEY_ENV, RPS_ENV, URL_ENV
from cdp.ingest.firmographics_emulator import FirmographicsEmulator
from reverse_etl.destinations import destination_names, emulator_class, get_destination

DEMO_TOKEN = "demo-token"  # the emulators' own credential, not a real secret


def start_emulators(stack: ExitStack) -> dict[str, Emulator]:
    """name -> running emulator, for every destination with an HTTP emulator."""
    emulators: dict[str, Emulator] = {}
    for name in destination_names():
        emulator = emulator_class(name)
        if emulator is None or not issubclass(emulator, Emulator):
            continue  # a local target (files, the embedded store): the demo uses the real one
        destination = get_destination(name)
        emulators[name] = stack.enter_context(emulator(DEMO_TOKEN))
        os.environ[destination.url_env] = emulators[name].url
        os.environ[destination.credential_env()] = DEMO_TOKEN
    return emulators


def start_enrichment_emulator(stack: ExitStack) -> FirmographicsEmulator:
    emulator = stack.enter_context(FirmographicsEmulator(token=DEMO_TOKEN))
    os.environ.update({URL_ENV: emulator.url, KEY_ENV: DEMO_TOKEN})
    # The client's own default (20 lookups/s) is for a plan it does not know; this API's is
    # known: nine tenths of it, so that arrival jitter never meets a 429. 12.3 s of a demo run
    # went to waiting for the lower quota.
    calls, period = emulator.rate_limit
    os.environ.setdefault(RPS_ENV, str(int(calls / period * 0.9)))
    return emulator


def received(emulators: dict[str, Emulator]) -> dict[str, int]:
    """How many records each emulator now holds."""
    return {name: len(emulator.held()) for name, emulator in emulators.items()}
