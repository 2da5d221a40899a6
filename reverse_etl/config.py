"""Sync definitions: YAML files in reverse_etl/syncs/, validated into SyncConfig with errors that
name the file and the field."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cdp.config import load_named_yaml_models, load_yaml_model, valid_name

SYNCS_DIR = Path(__file__).resolve().parent / "syncs"
_RELATION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")


class SyncConfigError(ValueError):
    """A sync definition is invalid; the message names the file and the field."""


class Identifier(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str = Field(description="Column of the source model holding the identifier.")
    destination: str = Field(description="Field the destination matches records on.")


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
    purpose: Literal["email_marketing", "personalization", "analytics", "sales_contact"] | None = (
        Field(
            None,
            description="Send only profiles whose latest consent grants this purpose "
            "(marts.customer_consents); the primary key must be the profile id.",
        )
    )
    audience: str | None = Field(
        None,
        description="Send only members of this audience (audiences/<name>.yml, "
        "marts.audience_memberships); the primary key must be the profile id.",
    )
    schedule: str | None = None
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

    @field_validator("audience")
    @classmethod
    def _audience(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from cdp.audiences import load_audiences

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
    from reverse_etl.destinations import destination_names

    if sync.destination not in destination_names():
        raise SyncConfigError(
            f"{path}: destination: unknown {sync.destination!r}; "
            f"known: {', '.join(destination_names())}"
        )
    return sync


def load_syncs(folder: Path = SYNCS_DIR) -> dict[str, SyncConfig]:
    return load_named_yaml_models(folder, load_sync, SyncConfigError)
