package questionnaire

import feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"

// Ids of the seed templates.
const (
	SeedProperty  = "seed-003-property"
	SeedAppliance = "seed-001-appliance"
	SeedHospital  = "seed-000-hospital-discharge"
	SeedAuto      = "seed-000-auto-after-service"
	// SeedCementDelivery confirms a delivery with its recipient (seed 000,
	// cement logistics): a "no" to either question is a mismatch.
	SeedCementDelivery = "seed-000-cement-delivery"
	// SeedFollowUpService asks customers about the follow-up service itself
	// (seed 004: periodic satisfaction surveys of the follow-up work).
	SeedFollowUpService = "seed-004-followup-service"
)

// AspectFollowUpService is the rating of the follow-up service itself
// (SeedFollowUpService): GetSatisfaction with this aspect is its figure,
// apart from the satisfaction with the services followed up ("overall").
const AspectFollowUpService = "followup_service"

// Aspects of the delivery confirmation's yes/no questions: a "no" is a
// mismatch of product or quantity, which the complaint loop raises at once
// with the general manager (seed 000, cement logistics).
const (
	AspectProductMatches  = "product_matches"
	AspectQuantityMatches = "quantity_matches"
)

const (
	rating = feedbackv1.QuestionKind_QUESTION_KIND_RATING
	scale  = feedbackv1.QuestionKind_QUESTION_KIND_SCALE
	nps    = feedbackv1.QuestionKind_QUESTION_KIND_NPS
	yesNo  = feedbackv1.QuestionKind_QUESTION_KIND_YES_NO
	choice = feedbackv1.QuestionKind_QUESTION_KIND_CHOICE
	text   = feedbackv1.QuestionKind_QUESTION_KIND_TEXT
)

func q(id, aspect, txt string, kind feedbackv1.QuestionKind, required bool, choices ...string) Question {
	return Question{ID: id, Aspect: aspect, Text: txt, Kind: kind, Required: required, Choices: choices}
}

// Seeds returns the templates that ship with Huifang, version 1, for every
// tenant. In each but the delivery confirmation and the follow-up survey
// only the overall rating is required, so that the minimal answer set
// {"aspect":"overall","rating":…} is a complete record; the delivery
// confirmation requires its two yes/no answers, product and quantity, which
// are what the call is for, and the follow-up survey its rating of the
// follow-up service (AspectFollowUpService).
func Seeds() []Questionnaire {
	return []Questionnaire{
		{
			ID: SeedProperty, TenantID: AllTenants, Version: 1, Seed: "003",
			Name:        "物业服务满意度回访 (property management satisfaction)",
			Description: "The 14 aspects of seed 003, each rated A satisfied, B fairly satisfied, C unsatisfied, with comments.",
			Questions: []Question{
				q("complaint_handling", "complaint_handling", "投诉处理 complaint handling", rating, false),
				q("equipment", "equipment", "设备设施 equipment", rating, false),
				q("building_maintenance", "building_maintenance", "房屋维修 building maintenance", rating, false),
				q("security", "security", "治安保卫 security", rating, false),
				q("fire_prevention", "fire_prevention", "消防及防灾 fire and disaster prevention", rating, false),
				q("cleaning", "cleaning", "清洁卫生 cleaning", rating, false),
				q("landscaping", "landscaping", "绿化及环境 landscaping and environment", rating, false),
				q("parking", "parking", "车辆停放 parking", rating, false),
				q("clubhouse", "clubhouse", "会所及休闲设施 clubhouse and leisure facilities", rating, false),
				q("staff_efficiency", "staff_efficiency", "员工工作效率 staff efficiency", rating, false),
				q("staff_attitude", "staff_attitude", "员工服务态度 staff attitude", rating, false),
				q("manager_courtesy", "manager_courtesy", "管理人员礼貌及回应 managers' courtesy and responsiveness", rating, false),
				q("overall", "overall", "总体印象 overall impression", rating, true),
				q("other", "other", "其他 other", rating, false),
			},
		},
		{
			ID: SeedAppliance, TenantID: AllTenants, Version: 1, Seed: "001",
			Name:        "家电售后回访 (appliance follow-up)",
			Description: "Seed 001: product quality, service attitude, efficiency; problems are routed by category.",
			Questions: []Question{
				q("product_quality", "product_quality", "产品质量是否满意？ Are you satisfied with the product's quality?", rating, false),
				q("service_attitude", "service_attitude", "服务人员态度是否满意？ Were our staff courteous?", rating, false),
				q("efficiency", "efficiency", "送货、安装或维修是否及时？ Was delivery, installation or repair on time?", rating, false),
				q("overall", "overall", "总体满意度 overall satisfaction", rating, true),
				q("suggestions", "suggestions", "其他意见或需求 other comments or needs", text, false),
			},
		},
		{
			ID: SeedHospital, TenantID: AllTenants, Version: 1, Seed: "000",
			Name:        "出院患者随访 (hospital discharge follow-up)",
			Description: "Seed 000 (hospital): recovery, satisfaction with doctors, nurses, tests and environment, medication.",
			Questions: []Question{
				q("recovery", "recovery", "目前恢复情况 how is your recovery?", choice, false, "recovered", "improving", "unchanged", "worse"),
				q("doctors", "doctors", "对医生是否满意 doctors", rating, false),
				q("nurses", "nurses", "对护士是否满意 nurses", rating, false),
				q("tests", "tests", "对检查是否满意 tests and examinations", rating, false),
				q("environment", "environment", "对住院环境是否满意 ward environment", rating, false),
				q("medication", "medication", "是否按医嘱用药 taking medication as prescribed?", yesNo, false),
				q("overall", "overall", "总体满意度 overall satisfaction", rating, true),
				q("advice", "advice", "生活方式、饮食及心理方面的需要 needs about lifestyle, diet, mood", text, false),
			},
		},
		{
			ID: SeedAuto, TenantID: AllTenants, Version: 1, Seed: "000",
			Name:        "售后服务满意度电话回访 (auto after-service survey)",
			Description: "Seed 000 (auto dealer): phone survey within 3 days of a maintenance or repair; unsatisfied answers go to the service manager.",
			Questions: []Question{
				q("overall", "overall", "对本次保养/维修是否满意 overall satisfaction with this visit", rating, true),
				q("service_advisor", "service_advisor", "服务顾问的接待与解释 the service advisor's reception and explanation", scale, false),
				q("fixed_first_time", "repair_quality", "问题是否一次修好 was it fixed the first time?", yesNo, false),
				q("on_time", "timeliness", "是否按约定时间交车 was the car ready when promised?", yesNo, false),
				q("recommend", "recommend", "您向亲友推荐本店的可能性 (0–10) how likely are you to recommend us?", nps, false),
				q("suggestions", "suggestions", "意见与建议 comments", text, false),
			},
		},
		{
			ID: SeedCementDelivery, TenantID: AllTenants, Version: 1, Seed: "000",
			Name:        "发货确认回访 (cement delivery confirmation)",
			Description: "Seed 000 (cement logistics): call the recipients of the previous day's deliveries to confirm product and quantity against the delivery receipt; any mismatch is reported to the general manager at once.",
			Questions: []Question{
				q(AspectProductMatches, AspectProductMatches, "收到的品种与发货单是否一致 is the product the one on the delivery receipt?", yesNo, true),
				q(AspectQuantityMatches, AspectQuantityMatches, "收到的数量与发货单是否一致 is the quantity the one on the delivery receipt?", yesNo, true),
				q("overall", "overall", "对本次送货是否满意 overall satisfaction with this delivery", rating, false),
			},
		},
		{
			ID: SeedFollowUpService, TenantID: AllTenants, Version: 1, Seed: "004",
			Name:        "回访服务满意度调查 (survey of the follow-up service)",
			Description: "Seed 004 (follow-up center): a periodic survey of the follow-up service itself, asked of customers who were followed up: the way the calls and visits were made (identity, purpose, convenience, listening) and whether what they raised was answered. Its rating is the aspect followup_service, apart from the satisfaction with the services.",
			Questions: []Question{
				q("followup_service", AspectFollowUpService, "您对我们的回访工作是否满意 overall satisfaction with our follow-up calls and visits", rating, true),
				q("introduced", "followup_introduced", "回访人员是否表明身份、说明来意 did the caller say who they are and why they called?", yesNo, false),
				q("convenient", "followup_convenient", "回访时间是否方便 was the time convenient?", yesNo, false),
				q("listened", "followup_listened", "是否认真倾听并记录您的意见 did we listen to and record what you said?", scale, false),
				q("answered", "followup_answered", "您反映的问题是否得到答复 was what you raised answered?", yesNo, false),
				q("suggestions", "suggestions", "意见与建议 comments", text, false),
			},
		},
	}
}
