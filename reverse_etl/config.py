"""Sync definitions: YAML files in reverse_etl/syncs/, validated into SyncConfig with errors that
name the file and the field."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cdp.core.config import load_named_yaml_models, load_yaml_model, valid_name

SYNCS_DIR = Path(__file__).resolve().parent / "syncs"
SYNCS_DIR_ENV = "CDP_SYNCS_DIR"  # a deployment's own sync definitions, instead of the shipped


def syncs_dir() -> Path:
    return Path(os.environ.get(SYNCS_DIR_ENV) or SYNCS_DIR)


_RELATION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")
PURPOSES = ("email_marketing", "personalization", "analytics", "sales_contact")
CHANNELS = ("email", "phone", "sms", "post", "web", "app", "ads")
# A reason for sending without a purpose must say something: a few words at least.
MIN_REASON_LENGTH = 20


class SyncConfigError(ValueError):
    """A sync definition is invalid; the message names the file and the field."""


class Identifier(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str = Field(description="Column of the source model holding the identifier.")
    destination: str = Field(description="Field the destination matches records on.")


class Trigger(BaseModel):
    """Run the sync as soon as the models it reads are rebuilt, when this happened."""

    model_config = ConfigDict(extra="forbid")
    columns: list[str] = Field(
        default_factory=list,
        description="Source columns the sync sends whose change, for any record the "
        "destination holds, starts a run (e.g. a lead status reaching sales readiness).",
    )
    new_records: bool = Field(
        False, description="Records new to the sync (new rows, new audience members) start a run."
    )

    @model_validator(mode="after")
    def _something(self) -> Trigger:
        if not self.columns and not self.new_records:
            raise ValueError("trigger: name columns, or set new_records: true")
        return self


class SyncConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    source: str = Field(description="schema.table of the dbt model to sync.")
    primary_key: str
    destination: str
    object: str = "contacts"
    identifier: Identifier
    fields: dict[str, str] = Field(description="destination field -> source column")
    mode: Literal["upsert", "update", "mirror"] = "upsert"
    filter: str | None = Field(None, description="SQL condition on the source's columns.")
    purpose: Literal["email_marketing", "personalization", "analytics", "sales_contact", "none"] = (
        Field(
            description="Processing purpose the destination uses the data for; consent for it "
            "on `channel` gates every record (marts.customer_consents). `none` only with a "
            "written `purpose_reason` (no processing of the person's data beyond the company's "
            "own operations)."
        )
    )
    channel: Literal["email", "phone", "sms", "post", "web", "app", "ads"] | None = Field(
        None, description="Channel the purpose is pursued on; required with a purpose."
    )
    basis: Literal["consent", "legitimate_interest"] = Field(
        "consent",
        description="consent: send only profiles whose latest statement grants the purpose on "
        "the channel. legitimate_interest: send everyone except profiles whose latest "
        "statement refuses it (an objection).",
    )
    purpose_reason: str | None = Field(
        None, description="Why the sync needs no purpose (with purpose: none)."
    )
    profile_column: str | None = Field(
        None,
        description="Column holding the profile id the consent gate checks; the primary key "
        "when not set.",
    )
    audience: str | None = Field(
        None,
        description="Send only members of this audience (audiences/<name>.yml, "
        "marts.audience_memberships); the primary key must be the profile id.",
    )
    schedule: str | None = None
    trigger: Trigger | None = Field(
        None,
        description="Event-triggered runs: a Dagster sensor starts the sync after the models it "
        "reads materialize, when trigger columns changed or new records arrived.",
    )
    batch_size: int | None = Field(None, gt=0)
    concurrency: int = Field(
        1,
        ge=1,
        le=16,
        description="Batches in flight at once (the rate limit still holds); deletes go in order.",
    )
    settings: dict[str, str | int | float | bool] = Field(default_factory=dict)
    path: Path | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return valid_name(value)

    @model_validator(mode="after")
    def _consent(self) -> SyncConfig:
        if self.purpose == "none":
            reason = (self.purpose_reason or "").strip()
            if len(reason) < MIN_REASON_LENGTH:
                raise ValueError(
                    "purpose: none needs purpose_reason: why this destination may receive the "
                    f"records without consent (at least {MIN_REASON_LENGTH} characters)"
                )
            if self.channel is not None:
                raise ValueError("channel: only with a purpose (purpose is none)")
        elif self.channel is None:
            raise ValueError(
                f"channel: required with purpose {self.purpose} (one of {', '.join(CHANNELS)})"
            )
        return self

    @model_validator(mode="after")
    def _trigger_columns(self) -> SyncConfig:
        unsent = [
            c for c in (self.trigger.columns if self.trigger else []) if c not in self.columns
        ]
        if unsent:
            raise ValueError(
                f"trigger.columns: {', '.join(unsent)} not sent by this sync (a change nobody "
                "receives triggers nothing); map it under fields"
            )
        return self

    @property
    def gated(self) -> bool:
        return self.purpose != "none"

    @property
    def profile_key(self) -> str:
        return self.profile_column or self.primary_key

    @field_validator("audience")
    @classmethod
    def _audience(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from cdp.intelligence.audiences import load_audiences

        known = load_audiences()
        if value not in known:
            raise ValueError(f"unknown audience {value!r}; known: {', '.join(sorted(known))}")
        return value

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        if not _RELATION.match(value):
            raise ValueError("must be schema.table, e.g. marts.customers")
        return value

    @field_validator("fields")
    @classmethod
    def _fields(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("map at least one destination field to a source column")
        return value

    @property
    def columns(self) -> list[str]:
        """Source columns the sync reads, identifier first."""
        return list(dict.fromkeys([self.identifier.source, *self.fields.values()]))


def load_sync(path: Path) -> SyncConfig:
    sync = load_yaml_model(path, SyncConfig, SyncConfigError, "sync")
    from reverse_etl.destinations import destination_names, get_destination

    if sync.destination not in destination_names():
        raise SyncConfigError(
            f"{path}: destination: unknown {sync.destination!r}; "
            f"known: {', '.join(destination_names())}"
        )
    problems = get_destination(sync.destination).check_settings(
        sync.batch_size, sync.settings, sync.mode
    )
    if problems:
        raise SyncConfigError("; ".join(f"{path}: {problem}" for problem in problems))
    return sync


def load_syncs(folder: Path | None = None) -> dict[str, SyncConfig]:
    """Every valid sync; raises on the first invalid one (see load_syncs_reporting)."""
    return load_named_yaml_models(folder or syncs_dir(), load_sync, SyncConfigError)


def load_syncs_reporting(folder: Path | None = None) -> tuple[dict[str, SyncConfig], list[str]]:
    """The valid syncs, and one line per invalid file: an invalid definition is reported and
    skipped, never a reason to stop the others."""
    syncs: dict[str, SyncConfig] = {}
    problems: list[str] = []
    folder = folder or syncs_dir()
    if not folder.is_dir():
        return syncs, [f"{folder}: no such folder of sync definitions ({SYNCS_DIR_ENV})"]
    for path in sorted(folder.glob("*.yml")):
        try:
            sync = load_sync(path)
        except SyncConfigError as exc:
            problems.append(str(exc))
            continue
        if sync.name in syncs:
            earlier = syncs[sync.name].path
            problems.append(f"{path}: name: {sync.name!r} is already used by {earlier}")
            continue
        syncs[sync.name] = sync
    return syncs, problems
