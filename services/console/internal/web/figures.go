package web

// figuresRoutes are the dashboards (coverage, timeliness, satisfaction per
// aspect, trends with the targets) and the monthly report.
func (s *Server) figuresRoutes() {}
