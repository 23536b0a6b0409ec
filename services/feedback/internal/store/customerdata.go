package store

// customerRecords and customerComplaints select a customer's visit records
// and complaints.
const (
	customerRecords    = `SELECT id FROM visit_records WHERE tenant_id = $1 AND customer_id = $2`
	customerComplaints = `SELECT id FROM complaints WHERE tenant_id = $1 AND customer_id = $2`
)

// CustomerRows are the rows linked to a customer other than by a
// customer_id column, for the person's export (customerdata.Source.Related):
// what was done to its records and complaints. $1 is the tenant, $2 the
// customer.
func CustomerRows() map[string]string {
	return map[string]string{
		"record_amendments": `SELECT * FROM record_amendments WHERE tenant_id = $1 AND record_id IN (` + customerRecords + `) ORDER BY record_id, seq`,
		"record_sign_offs":  `SELECT * FROM record_sign_offs WHERE tenant_id = $1 AND record_id IN (` + customerRecords + `) ORDER BY record_id, seq`,
		"record_complaints": `SELECT * FROM record_complaints WHERE record_id IN (` + customerRecords + `) ORDER BY record_id, position`,
		"reviews":           `SELECT * FROM reviews WHERE tenant_id = $1 AND record_id IN (` + customerRecords + `) ORDER BY at, id`,
		"complaint_history": `SELECT * FROM complaint_history WHERE complaint_id IN (` + customerComplaints + `) ORDER BY complaint_id, seq`,
		"complaint_requests": `SELECT * FROM complaint_requests WHERE tenant_id = $1 AND complaint_id IN (` + customerComplaints + `)
  ORDER BY created_at, request_id`,
		"visit_assignments": `SELECT * FROM visit_assignments WHERE tenant_id = $1 AND visit_id IN
  (SELECT visit_id FROM visits WHERE tenant_id = $1 AND customer_id = $2) ORDER BY assigned_at`,
	}
}
