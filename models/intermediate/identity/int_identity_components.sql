-- Connected components of the record graph: every record gets the smallest record key it is
-- linked to, directly or through others. A recursive walk that terminates because UNION drops
-- rows already found (on Spark, rounds of propagation: macros/identity.sql); components stay
-- small because junk and shared identifiers do not link.

{{ connected_components(ref('int_identity_records'), ref('int_identity_edges')) }}
