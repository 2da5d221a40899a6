"""Warehouse-native Customer Data Platform: demo data, raw loads and the `cdp` CLI."""
