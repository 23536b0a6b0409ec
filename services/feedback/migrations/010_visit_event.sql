-- The id of the VisitDue that stored the visit (its first): the consumer keeps no inbox row for
-- it, and a redelivery of it finds its id here and changes nothing. Visits stored before (NULL)
-- were learnt with an inbox row, which a redelivery finds instead.
ALTER TABLE visits ADD COLUMN event_id text;
