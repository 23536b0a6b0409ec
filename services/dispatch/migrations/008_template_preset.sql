-- Issue 16: seed 002's SMS footer (project, booking number, advisor) is a
-- format a template asks for (preset '002'), no longer forced on every
-- tenant's SMS. The SMS templates stored before were all made under that
-- rule and keep it; upserting one again without the preset drops it.
ALTER TABLE templates ADD COLUMN preset text NOT NULL DEFAULT '';
UPDATE templates SET preset = '002' WHERE channel = 'CHANNEL_SMS';
