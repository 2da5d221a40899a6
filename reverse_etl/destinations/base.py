"""What every destination is: the records it is given, the outcomes it reports, its typed
options, and the base for HTTP APIs."""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
)

from cdp.core.http import HttpTransport, RateLimiter


class Record:
    """One row to deliver: its key, its mapped fields, and what the destination knows it by.
    The engine hands over the fields as the warehouse encoded them (`encoded`, a JSON object's
    text), decoded when a destination first reads `fields`; a destination that embeds them in
    its request as they are (`fields_json_with`) builds no dict per record."""

    __slots__ = ("_fields", "destination_id", "encoded", "identifier", "record_key")

    def __init__(
        self,
        record_key: str,
        identifier: str,
        fields: dict | None = None,
        destination_id: str | None = None,
        encoded: str | None = None,
    ):
        self.record_key, self.identifier = record_key, identifier
        self.destination_id, self.encoded = destination_id, encoded
        self._fields = fields

    @property
    def fields(self) -> dict:
        if self._fields is None:
            self._fields = orjson.loads(self.encoded) if self.encoded else {}
        return self._fields

    def fields_json_with(self, name: str, value) -> orjson.Fragment:
        """The fields and one more (`name`: `value`, which wins over a field of that name) as
        JSON to embed in a request body."""
        if self._fields is not None or not self.encoded:
            return orjson.Fragment(orjson.dumps({**self.fields, name: value}))
        head = self.encoded.rstrip()[:-1].rstrip()  # the object without its closing brace
        separator = "" if head.endswith("{") else ","
        # A repeated name: JSON parsers keep the last, as the dict merge above does.
        extra = f"{orjson.dumps(name).decode()}:{orjson.dumps(value).decode()}"
        return orjson.Fragment(f"{head}{separator}{extra}}}")

    def __repr__(self) -> str:
        return f"Record({self.record_key!r}, {self.identifier!r}, {self.destination_id!r})"

    def __eq__(self, other) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        return (self.record_key, self.identifier, self.destination_id, self.fields) == (
            other.record_key,
            other.identifier,
            other.destination_id,
            other.fields,
        )


@dataclass
class Outcome:
    record_key: str
    ok: bool
    destination_id: str | None = None
    message: str = ""
    # Update mode: the destination has no record for it (nothing updated, nothing wrong).
    absent: bool = False


class Options(BaseModel):
    """What a sync's `settings:` may hold for a destination, typed; an unknown key is a typo and
    refused when the sync is loaded. Each destination declares its own subclass."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpOptions(Options):
    base_url: str | None = None
    # Lift or tighten the destination's quota (a local emulator, an account with a higher plan).
    rate_limit_calls: PositiveInt | None = None
    rate_limit_period: PositiveFloat | None = None
    timeout: PositiveFloat = 10.0
    max_retries: NonNegativeInt = 6
    backoff: NonNegativeFloat = 0.5


@dataclass
class DestinationSettings:
    """Where and how to reach a destination; secrets only from environment variables."""

    base_url: str
    token: str = field(repr=False, default="")
    options: Options = field(default_factory=Options)


class Destination(ABC):
    """Send batches of records; report an Outcome per record."""

    name: ClassVar[str]
    batch_size: ClassVar[int]
    # The API's own limit on records per call (None: no limit); a larger batch_size is refused
    # when the sync is loaded, not by the destination on every call.
    max_batch_size: ClassVar[int | None] = None
    options_model: ClassVar[type[Options]] = Options
    rate_limit: ClassVar[tuple[int, float]] = (1_000_000, 1.0)  # (requests, seconds)
    supports_delete: ClassVar[bool] = False
    # Mode update: the API can update records matched by the identifier without creating any.
    supports_update_existing: ClassVar[bool] = False
    token_env: ClassVar[str | None] = None
    url_env: ClassVar[str | None] = None

    def __init__(self, settings: DestinationSettings, object_name: str, id_field: str, sleep=None):
        self.settings, self.object_name, self.id_field = settings, object_name, id_field
        self.sleep = sleep

    @classmethod
    def credential_env(cls) -> str | None:
        """The environment variable holding the credential the destination checks."""
        return cls.token_env

    @classmethod
    def settings_from_env(cls, options: dict) -> DestinationSettings:
        typed = cls.options_model.model_validate(options)
        base_url = str(getattr(typed, "base_url", None) or os.environ.get(cls.url_env or "", ""))
        if not base_url:
            raise ValueError(f"{cls.name}: set {cls.url_env} or settings.base_url")
        token = os.environ.get(cls.token_env, "") if cls.token_env else ""
        if cls.token_env and not token:
            raise ValueError(f"{cls.name}: the environment variable {cls.token_env} is not set")
        return DestinationSettings(base_url=base_url, token=token, options=typed)

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
        try:
            cls.options_model.model_validate(options)
        except ValidationError as exc:
            known = ", ".join(sorted(cls.options_model.model_fields)) or "none"
            for error in exc.errors():
                where = "settings." + ".".join(str(part) for part in error["loc"])
                if error["type"] == "extra_forbidden":
                    problems.append(f"{where}: unknown setting for {cls.name}; known: {known}")
                else:
                    problems.append(f"{where}: {_lower_first(error['msg'])}")
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


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


class HttpDestination(Destination):
    """A destination behind an HTTP API: the shared transport (quota, retries with backoff,
    Retry-After, errors mapped to DeliveryError, RequestRejected and AuthenticationFailed) with
    the headers `headers()` gives: a bearer token unless the API says otherwise."""

    options_model: ClassVar[type[Options]] = HttpOptions

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        options = self.settings.options
        calls, period = self.rate_limit
        sleep = self.sleep or time.sleep
        self.transport = HttpTransport(
            self.settings.base_url,
            self.headers(),
            RateLimiter(
                options.rate_limit_calls or calls,
                options.rate_limit_period or period,
                sleep=sleep,
            ),
            timeout=options.timeout,
            max_retries=options.max_retries,
            backoff=options.backoff,
            sleep=sleep,
            name=self.name,
        )

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.settings.token}"}
