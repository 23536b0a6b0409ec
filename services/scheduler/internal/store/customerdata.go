package store

// CustomerRows are the rows linked to a customer other than by a
// customer_id column, for the person's export (customerdata.Source.Related):
// the services its visits were planned for. $1 is the tenant, $2 the customer.
func CustomerRows() map[string]string {
	return map[string]string{
		"services": `SELECT * FROM services WHERE tenant_id = $1 AND service_id IN
  (SELECT service_id FROM planned_visits WHERE tenant_id = $1 AND customer_id = $2) ORDER BY service_id`,
	}
}
