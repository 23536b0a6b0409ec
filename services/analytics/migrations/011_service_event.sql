-- The id of the ServiceCompleted that stored the service (its first): the
-- consumer keeps no inbox row for that event, and a redelivery of it finds
-- its id here and changes nothing. Services stored before (NULL) were
-- applied with an inbox row, which a redelivery finds instead.
ALTER TABLE services ADD COLUMN event_id text;
