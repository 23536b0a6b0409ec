package web

// policyRoutes are the policy desk: list, edit, simulate, submit for
// approval; the director approves.
func (s *Server) policyRoutes() {}
