{{ profile_mart_config() }}

-- Every candidate value of every golden-record attribute, with the record it came from: the
-- input to survivorship. Addresses travel as one value so street and city come from one record.

with

refreshed_profiles as (

    {{ profiles_to_refresh() }}

),

records as (

    select
        records.*,
        assignments.profile_id,
        refreshed_profiles.profile_updated_at
    from {{ ref('int_identity_records') }} as records
    inner join {{ ref('int_profile_assignments') }} as assignments
        on records.record_key = assignments.record_key
    inner join refreshed_profiles on assignments.profile_id = refreshed_profiles.profile_id

),

quality as (

    select * from {{ ref('int_identifier_quality') }}

),

attribute_values as (

    {%- set attributes = {
        'first_name': 'first_name',
        'last_name': 'last_name',
        'phone': 'phone',
        'mobile_phone': 'mobile_phone',
        'country_code': 'country_code',
        'birth_date': 'cast(birth_date as ' ~ dbt.type_string() ~ ')',
        'company_name': 'company_name',
        'address': "case when street is not null and postal_code is not null then street || ', ' || postal_code || ' ' || coalesce(city, '') end",
    } %}
    {%- for attribute, expression in attributes.items() %}
        select
            profile_id,
            record_key,
            source,
            source_record_id,
            '{{ "phone" if attribute == "mobile_phone" else attribute }}' as attribute,
            {{ expression }} as attribute_value,
            observed_at,
            profile_updated_at
        from records
        union all
    {%- endfor %}
    -- junk emails (blocklist) never become a customer's email
    select
        records.profile_id,
        records.record_key,
        records.source,
        records.source_record_id,
        'email' as attribute,
        records.email as attribute_value,
        records.observed_at,
        records.profile_updated_at
    from records
    left join quality
        on quality.identifier_kind = 'email' and records.email = quality.identifier_value
    where not coalesce(quality.is_blocklisted, false)

)

select distinct * from attribute_values
where attribute_value is not null and trim(attribute_value) <> ''
