package access

import (
	"github.com/huifang/huifang/pkg/auth"
	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
)

// Feedback is the feedback service's permission table.
func Feedback() auth.Table {
	me := func(field string, over ...auth.Role) map[string][]auth.Role {
		return map[string][]auth.Role{field: over}
	}
	records := "an agent reaches only the records it logged"
	complaints := "a department owner acts on the complaints routed to the departments its token names"
	improvements := "a department owner acts on the complaints routed to the departments its token names, a leader on those of the org units it leads"
	questionnaires := auth.Rule{Permission: "questionnaires.read", Roles: roles(agent, leader, director, qa, admin, svc)}
	return auth.Table{
		feedbackv1.FeedbackService_LogVisit_FullMethodName:                   {Permission: "records.write", Roles: roles(agent, leader), Self: me("agent_id"), Scope: "visits of tasks the agent holds"},
		feedbackv1.FeedbackService_GetVisitRecord_FullMethodName:             {Permission: "records.read", Roles: roles(agent, leader, director, qa), Scope: records},
		feedbackv1.FeedbackService_ListVisitRecords_FullMethodName:           {Permission: "records.read", Roles: roles(agent, leader, director, qa), Self: me("agent_id", leader, director, qa), Scope: records},
		feedbackv1.FeedbackService_AmendVisitRecord_FullMethodName:           {Permission: "records.amend", Roles: roles(agent, leader), Self: me("by"), Scope: records},
		feedbackv1.FeedbackService_SignOffVisitRecord_FullMethodName:         {Permission: "records.sign", Roles: roles(leader, director), Self: me("leader_id"), Scope: "records of the org units the leader leads"},
		feedbackv1.FeedbackService_CreateQuestionnaire_FullMethodName:        {Permission: "questionnaires.write", Roles: roles(admin)},
		feedbackv1.FeedbackService_SetPolicyQuestionnaire_FullMethodName:     {Permission: "questionnaires.write", Roles: roles(admin)},
		feedbackv1.FeedbackService_GetQuestionnaire_FullMethodName:           questionnaires,
		feedbackv1.FeedbackService_GetPolicyQuestionnaire_FullMethodName:     questionnaires,
		feedbackv1.FeedbackService_ListQuestionnaires_FullMethodName:         questionnaires,
		feedbackv1.FeedbackService_ListComplaints_FullMethodName:             {Permission: "complaints.read", Roles: roles(leader, director, owner), Scope: complaints},
		feedbackv1.FeedbackService_GetComplaint_FullMethodName:               {Permission: "complaints.read", Roles: roles(agent, leader, director, owner), Scope: complaints},
		feedbackv1.FeedbackService_AcknowledgeComplaint_FullMethodName:       {Permission: "complaints.handle", Roles: roles(owner, director), Self: me("by"), Scope: complaints},
		feedbackv1.FeedbackService_ResolveComplaint_FullMethodName:           {Permission: "complaints.handle", Roles: roles(owner, director), Self: me("by"), Scope: complaints},
		feedbackv1.FeedbackService_ReopenComplaint_FullMethodName:            {Permission: "complaints.reopen", Roles: roles(leader, director, owner), Self: me("by"), Scope: complaints},
		feedbackv1.FeedbackService_CloseComplaint_FullMethodName:             {Permission: "complaints.close", Roles: roles(leader, director, owner), Self: me("by"), Scope: complaints},
		feedbackv1.FeedbackService_SetImprovementPlan_FullMethodName:         {Permission: "improvements.write", Roles: roles(owner, leader, director), Scope: improvements},
		feedbackv1.FeedbackService_CompleteImprovementMeasure_FullMethodName: {Permission: "improvements.write", Roles: roles(owner, leader, director), Scope: improvements},
		feedbackv1.FeedbackService_CreateOpenLetter_FullMethodName:           {Permission: "letters.write", Roles: roles(director, admin), Self: me("by")},
		feedbackv1.FeedbackService_SampleForReview_FullMethodName:            {Permission: "reviews.sample", Roles: roles(qa, leader, director)},
		feedbackv1.FeedbackService_SubmitReview_FullMethodName:               {Permission: "reviews.write", Roles: roles(qa), Self: me("reviewer_id")},
		// Inbound complaints (issue 17): an agent takes the call or enters the letter, a leader or
		// director may too, and the integrator that runs the web form submits web complaints.
		feedbackv1.FeedbackService_CreateComplaint_FullMethodName: {Permission: "complaints.create", Roles: roles(agent, leader, director, integr),
			Scope: "an agent or a leader names an org unit of its token (or a visit of one); an integrator submits web forms only (received_via web)"},
		feedbackv1.FeedbackService_ListReviews_FullMethodName: {Permission: "reviews.read", Roles: roles(qa, leader, director, agent), Self: me("agent_id", leader, director, qa),
			Scope: "an agent lists its own reviews; a leader those of records of the org units it leads"},
		feedbackv1.FeedbackService_WatchComplaint_FullMethodName: {Permission: "complaints.read", Roles: roles(agent, leader, director, owner),
			Scope: complaints + "; as GetComplaint; at most WATCH_PER_CALLER watches at once"},
	}
}
