-- The matcher's pairs on warehouses without dbt Python models; empty until the matcher first ran.

with

source as (

    {{ source_or_empty('matcher', 'identity_match_pairs', {
        'record_key_l': dbt.type_string(),
        'record_key_r': dbt.type_string(),
        'match_probability': dbt.type_float(),
        'match_weight': dbt.type_float(),
        'agreed_fields': dbt.type_string(),
        'disagreed_fields': dbt.type_string(),
    }) }}

),

typed as (

    select
        cast(record_key_l as {{ dbt.type_string() }}) as record_key_l,
        cast(record_key_r as {{ dbt.type_string() }}) as record_key_r,
        cast(match_probability as {{ dbt.type_float() }}) as match_probability,
        cast(match_weight as {{ dbt.type_float() }}) as match_weight,
        cast(agreed_fields as {{ dbt.type_string() }}) as agreed_fields,
        cast(disagreed_fields as {{ dbt.type_string() }}) as disagreed_fields
    from source

)

select * from typed
