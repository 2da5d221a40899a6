-- Churn and CLV scores per customer; empty until the predictions asset first ran.

with

source as (

    {{ source_or_empty('ml', 'customer_predictions', {
        'profile_id': dbt.type_string(),
        'churn_probability': dbt.type_float(),
        'predicted_clv_12m_eur': dbt.type_float(),
        'model_run_id': dbt.type_string(),
        'model_version': dbt.type_string(),
        'scored_at': 'timestamp',
    }) }}

),

renamed as (

    select
        profile_id,
        cast(churn_probability as numeric(6, 4)) as churn_probability,
        cast(predicted_clv_12m_eur as numeric(18, 2)) as predicted_clv_12m_eur,
        model_run_id,
        model_version,
        scored_at
    from source

)

select * from renamed
