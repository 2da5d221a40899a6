{#- Spark reads the raw layer as Parquet files: one folder per raw table (<folder>/<identifier>),
    as `cdp export-raw` writes them from the loaded warehouse. `tables` names the folders there
    (default: every raw source); a source without one reads as empty (source_or_empty). -#}
{% macro register_raw_parquet(folder, tables=none) %}
    {% do run_query("create database if not exists raw") %}
    {% for source in graph.sources.values()
        if source.schema == 'raw' and (tables is none or source.identifier in tables) %}
        {% do run_query(
            "create table if not exists raw." ~ source.identifier
            ~ " using parquet location '" ~ folder ~ "/" ~ source.identifier ~ "'"
        ) %}
    {% endfor %}
    {{ log("registered the raw tables from " ~ folder, info=true) }}
{% endmacro %}
