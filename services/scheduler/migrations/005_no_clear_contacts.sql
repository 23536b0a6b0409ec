-- Issue #14: the scheduler keeps no clear contact. The customer snapshot of
-- each visit keeps the masked name, phone and email and whether there is a
-- phone, an email, as intake now publishes it.
CREATE OR REPLACE FUNCTION pg_temp.mask_phone(p text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE
    WHEN d = '' THEN ''
    WHEN length(d) <= 6 THEN '****' || right(d, 2)
    ELSE repeat('*', least(length(d) - 4, 7)) || right(d, 4)
  END
  FROM (SELECT CASE WHEN length(x) > 11 AND x LIKE '86%' THEN substr(x, 3) ELSE x END AS d
        FROM (SELECT regexp_replace(coalesce(p, ''), '[^0-9]', '', 'g') AS x) a) b
$$;
CREATE OR REPLACE FUNCTION pg_temp.mask_name(n text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN btrim(coalesce(n, '')) = '' THEN ''
    ELSE left(btrim(n), 1) || repeat('*', greatest(1, least(char_length(btrim(n)) - 1, 3))) END
$$;
CREATE OR REPLACE FUNCTION pg_temp.mask_email(e text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN btrim(coalesce(e, '')) = '' THEN ''
    WHEN position('@' in e) <= 1 THEN '***'
    ELSE left(e, 1) || '***@' || split_part(e, '@', 2) END
$$;
-- mask_customer turns a kept customer snapshot (protojson) into what
-- Huifang keeps now: the masked forms and whether there is a phone, an
-- email, never the clear name, phone or email.
CREATE OR REPLACE FUNCTION pg_temp.mask_customer(c jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
  SELECT (c - 'name' - 'phone' - 'email') || jsonb_strip_nulls(jsonb_build_object(
    'nameMasked', nullif(pg_temp.mask_name(c->>'name'), ''),
    'phoneMasked', nullif(pg_temp.mask_phone(c->>'phone'), ''),
    'emailMasked', nullif(pg_temp.mask_email(c->>'email'), ''),
    'hasPhone', CASE WHEN pg_temp.mask_phone(c->>'phone') <> '' THEN true END,
    'hasEmail', CASE WHEN btrim(coalesce(c->>'email', '')) <> '' THEN true END))
$$;

UPDATE planned_visits SET customer = pg_temp.mask_customer(customer)
WHERE customer IS NOT NULL AND customer ?| array['name', 'phone', 'email'];
