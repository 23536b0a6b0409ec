package figures

import "fmt"

// IncentiveRule is an incentive rule in fen (0.01 yuan).
type IncentiveRule struct {
	AgentRewardFen     int64 `json:"agent_reward_fen"`
	AgentPenaltyFen    int64 `json:"agent_penalty_fen"`
	ManagerRewardFen   int64 `json:"manager_reward_fen"`
	ManagerPenaltyFen  int64 `json:"manager_penalty_fen"`
	DirectorRewardFen  int64 `json:"director_reward_fen"`
	DirectorPenaltyFen int64 `json:"director_penalty_fen"`
}

// AutoDealerRule is seed 000's (auto dealer, 售后电话回访/短信提醒制度): 100 %
// SMS sending and call success earns 0.5 yuan per message for the agent, 100
// yuan for the department manager and 200 for the director; late or missed
// ones cost the same.
var AutoDealerRule = IncentiveRule{
	AgentRewardFen: 50, AgentPenaltyFen: 50,
	ManagerRewardFen: 10000, ManagerPenaltyFen: 10000,
	DirectorRewardFen: 20000, DirectorPenaltyFen: 20000,
}

// Agent is what an agent earns for a tally: the reward per message made on
// time, less the penalty per message late or missed.
func (r IncentiveRule) Agent(t Tally) int64 {
	return t.OnTime*r.AgentRewardFen - t.Missed()*r.AgentPenaltyFen
}

// Tally is how many messages (visits) were due and how many were made on time.
type Tally struct {
	Who    string
	Due    int64
	OnTime int64
}

// Missed is what was late or never made.
func (t Tally) Missed() int64 { return t.Due - t.OnTime }

// Line is one entry of the incentive ledger.
type Line struct {
	Role        string
	Who         string
	OnTime      int64
	Missed      int64
	AmountFen   int64
	Explanation string
}

// Ledger applies the rule: each agent earns the reward per message made on
// time and pays the penalty per message late or missed; each department
// (org unit) manager and the director (the tenant) earn their reward when
// every message of theirs in the period was on time (100 %), and pay their
// penalty otherwise. Nothing due, nothing earned.
func Ledger(rule IncentiveRule, agents, units []Tally, tenant Tally) []Line {
	var out []Line
	for _, a := range agents {
		out = append(out, Line{Role: "agent", Who: a.Who, OnTime: a.OnTime, Missed: a.Missed(), AmountFen: rule.Agent(a),
			Explanation: fmt.Sprintf("%d on time × %s − %d late or missed × %s", a.OnTime, yuan(rule.AgentRewardFen), a.Missed(), yuan(rule.AgentPenaltyFen))})
	}
	all := func(role string, t Tally, reward, penalty int64) {
		if t.Due == 0 {
			return
		}
		l := Line{Role: role, Who: t.Who, OnTime: t.OnTime, Missed: t.Missed()}
		if t.Missed() == 0 {
			l.AmountFen, l.Explanation = reward, fmt.Sprintf("all %d on time: + %s", t.Due, yuan(reward))
		} else {
			l.AmountFen, l.Explanation = -penalty, fmt.Sprintf("%d of %d late or missed: − %s", t.Missed(), t.Due, yuan(penalty))
		}
		out = append(out, l)
	}
	for _, u := range units {
		all("manager", u, rule.ManagerRewardFen, rule.ManagerPenaltyFen)
	}
	all("director", tenant, rule.DirectorRewardFen, rule.DirectorPenaltyFen)
	return out
}

func yuan(fen int64) string { return fmt.Sprintf("%d.%02d yuan", fen/100, fen%100) }
