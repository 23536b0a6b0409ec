-- Services the NATS ingress stored say so: an ingress message's inbox key is
-- its service's source ids, so a redelivery finds the service and the
-- ingress consumer keeps no inbox row for it. Services stored before (or
-- through the API) read false; the ingress's inbox rows of those stay until
-- their retention ends.
ALTER TABLE services ADD COLUMN via_ingress boolean NOT NULL DEFAULT false;
