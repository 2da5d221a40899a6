"""The Dagster code location: raw loads -> dbt models, with checks, schedule and sensor."""
