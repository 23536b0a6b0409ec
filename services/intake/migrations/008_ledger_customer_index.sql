-- The contact ledger's entries of a customer (issue 15): ledger_entries_customer
-- loses its last column, id. GetCustomerTimeline's read of a page (Store.Ledger)
-- is a bitmap scan of this index OR'ed with the unattached entries' two, then a
-- sort by (at, id): the id in the index ordered nothing; it only made each
-- entry 40 bytes longer. at stays: it bounds a page's scan to the range asked
-- (from, to) and to the cursor's side ((at, id) after the cursor is looked up
-- as at >= the cursor's at, then checked). Each entry written costs ~70 bytes
-- less WAL (its insert and its share of the page splits) and the index is
-- about half the size.
DROP INDEX ledger_entries_customer;
CREATE INDEX ledger_entries_customer ON ledger_entries (tenant_id, customer_id, at) WHERE customer_id <> '';
