-- Issue 15: the id of the ServiceCompleted that recorded the service (its
-- first): the planning consumer keeps no inbox row for that event, and a
-- redelivery of it finds its id here and changes nothing. Services recorded
-- before (NULL), or outside a consumer, were applied with an inbox row, or
-- by no event: an event about them is claimed in the inbox, as before.
ALTER TABLE services ADD COLUMN event_id text;
