"""Reverse ETL: declarative syncs of warehouse models to business tools. The engine arrives with
the reverse-ETL work; the package exists so the layout is stable."""
