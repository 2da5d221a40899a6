"""Destinations: one small class each behind a common interface, registered by name."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

_REGISTRY: dict[str, type[Destination]] = {}


@dataclass
class Record:
    """One row to deliver: its key, its mapped fields, and what the destination knows it by."""

    record_key: str
    identifier: str
    fields: dict
    destination_id: str | None = None


@dataclass
class Outcome:
    record_key: str
    ok: bool
    destination_id: str | None = None
    message: str = ""
    # Update mode: the destination has no record for it (nothing updated, nothing wrong).
    absent: bool = False


@dataclass
class DestinationSettings:
    """Where and how to reach a destination; secrets only from environment variables."""

    base_url: str
    token: str = field(repr=False, default="")
    options: dict = field(default_factory=dict)


class Destination(ABC):
    """Send batches of records; report an Outcome per record."""

    name: ClassVar[str]
    batch_size: ClassVar[int]
    # The API's own limit on records per call (None: no limit); a larger batch_size is refused
    # when the sync is loaded, not by the destination on every call.
    max_batch_size: ClassVar[int | None] = None
    # Keys a sync's `settings` may hold; anything else is a typo, refused at load.
    options: ClassVar[frozenset[str]] = frozenset(
        {"base_url", "rate_limit_calls", "rate_limit_period", "timeout", "max_retries", "backoff"}
    )
    rate_limit: ClassVar[tuple[int, float]]  # (requests, seconds)
    supports_delete: ClassVar[bool] = False
    # Mode update: the API can update records matched by the identifier without creating any.
    supports_update_existing: ClassVar[bool] = False
    token_env: ClassVar[str | None] = None
    url_env: ClassVar[str | None] = None

    def __init__(self, settings: DestinationSettings, object_name: str, id_field: str, sleep=None):
        self.settings, self.object_name, self.id_field = settings, object_name, id_field
        self.sleep = sleep

    @classmethod
    def settings_from_env(cls, options: dict) -> DestinationSettings:
        base_url = str(options.get("base_url") or os.environ.get(cls.url_env or "", ""))
        if not base_url:
            raise ValueError(f"{cls.name}: set {cls.url_env} or settings.base_url")
        token = os.environ.get(cls.token_env, "") if cls.token_env else ""
        if cls.token_env and not token:
            raise ValueError(f"{cls.name}: the environment variable {cls.token_env} is not set")
        return DestinationSettings(base_url=base_url, token=token, options=options)

    @classmethod
    def check_settings(
        cls, batch_size: int | None, options: dict, mode: str = "upsert"
    ) -> list[str]:
        """Problems with a sync's mode, batch size and settings for this destination, as
        `field: message` lines."""
        problems = []
        if mode == "update" and not cls.supports_update_existing:
            problems.append(
                f"mode: {cls.name} cannot update records without creating them; use upsert"
            )
        if batch_size and cls.max_batch_size and batch_size > cls.max_batch_size:
            problems.append(
                f"batch_size: {batch_size} is more than {cls.name} accepts in one call "
                f"({cls.max_batch_size})"
            )
        for key in sorted(set(options) - cls.options):
            problems.append(
                f"settings.{key}: unknown setting for {cls.name}; known: "
                f"{', '.join(sorted(cls.options))}"
            )
        for key in ("rate_limit_calls", "rate_limit_period", "timeout"):
            if key in options and not (
                isinstance(options[key], int | float)
                and not isinstance(options[key], bool)
                and options[key] > 0
            ):
                problems.append(f"settings.{key}: must be a positive number")
        for key in ("max_retries",):
            if key in options and not (isinstance(options[key], int) and options[key] >= 0):
                problems.append(f"settings.{key}: must be a whole number, 0 or more")
        return problems

    @abstractmethod
    def upsert(self, records: list[Record]) -> list[Outcome]:
        """Create or update the records; one Outcome per record, in any order."""

    def delete(self, records: list[Record]) -> list[Outcome]:
        """Delete or archive records (mirror mode); only where supports_delete."""
        raise TypeError(f"{self.name} cannot delete records; use mode upsert or update")

    def update_existing(self, records: list[Record]) -> list[Outcome]:
        """Mode update: update the records the destination holds under these identifiers,
        whoever created them; create none (Outcome.absent for those it does not hold)."""
        raise TypeError(f"{self.name} cannot update without creating; use mode upsert")

    def merge(self, pairs: list[tuple[Record, Record]]) -> list[Outcome]:
        """Profiles merged in the warehouse: (merged-away, surviving) records. The destination's
        own merge where its API has one; else the merged-away record is deleted where possible
        (the survivor carries the data). One Outcome per merged-away record."""
        losers = [loser for loser, _ in pairs]
        if self.supports_delete:
            return self.delete(losers)
        return [Outcome(r.record_key, True) for r in losers]

    def withdraw(self, records: list[Record]) -> list[Outcome]:
        """The person withdrew consent for the sync's purpose (or objected to it): the
        destination must stop using the record. Deleted there by default, as mirror mode would;
        where nothing can be deleted, erased from what was exported."""
        return self.delete(records) if self.supports_delete else self.erase(records)

    def erase(self, records: list[Record]) -> list[Outcome]:
        """Remove people for good (a data-subject erasure request). Where the API has no
        stronger delete than the one mirror mode uses, that one."""
        if not self.supports_delete:
            raise TypeError(f"{self.name} cannot delete records")
        return self.delete(records)

    @property
    def calls(self) -> int:
        transport = getattr(self, "transport", None)
        return transport.stats.calls if transport else 0


def register(cls: type[Destination]) -> type[Destination]:
    _REGISTRY[cls.name] = cls
    return cls


def get_destination(name: str) -> type[Destination]:
    _load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown destination {name!r}; known: {destination_names()}") from None


def destination_names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def _load_builtin() -> None:
    from reverse_etl.destinations import (  # noqa: F401
        braze,
        files,
        hubspot,
        profile_store,
        salesforce,
        webhook,
    )
