package web

// deskRoutes are the leader's and director's desk: the group queue and
// wallboard, deadlines, reassigning, complaints and their closed loop, QA.
func (s *Server) deskRoutes() {
	s.topic("wallboard", s.watchWallboard)
}
