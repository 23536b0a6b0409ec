package web

// agentRoutes are the agent's workbench: the next follow-up, the customer
// card and timeline, the questionnaire and script, attempts, appointments,
// the visit record, problems and promises, the queue and today's figures.
func (s *Server) agentRoutes() {
	s.topic("queue", s.watchQueue)
}
