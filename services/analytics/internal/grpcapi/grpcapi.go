// Package grpcapi serves huifang.analytics.v1.AnalyticsService.
package grpcapi

import (
	"context"
	"regexp"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	analyticsv1 "github.com/huifang/huifang/proto/huifang/analytics/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
	"github.com/huifang/huifang/services/analytics/internal/satisfaction"
	"github.com/huifang/huifang/services/analytics/internal/store"
)

// Server implements AnalyticsService.
type Server struct {
	analyticsv1.UnimplementedAnalyticsServiceServer
	Store *store.Store
}

// The tenant rule intake applies to the events it takes in.
var tenantRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

const maxOrgUnitLen = 200

// GetSatisfaction returns seed 003's figures of one aspect, summed from the
// daily buckets that match the request.
func (s *Server) GetSatisfaction(ctx context.Context, req *analyticsv1.GetSatisfactionRequest) (*analyticsv1.GetSatisfactionResponse, error) {
	f, err := filter(req)
	if err != nil {
		return nil, err
	}
	c, err := s.Store.Sum(ctx, f)
	if err != nil {
		return nil, err
	}
	fig := satisfaction.Evaluate(f.Aspect, c)
	return &analyticsv1.GetSatisfactionResponse{
		Aspect:          fig.Aspect,
		Returned:        fig.Returned(),
		Satisfied:       fig.Satisfied,
		FairlySatisfied: fig.FairlySatisfied,
		Unsatisfied:     fig.Unsatisfied,
		Rate:            fig.Rate,
		Target:          fig.Target,
		MeetsTarget:     fig.MeetsTarget,
	}, nil
}

// filter validates the request and fills its defaults.
func filter(req *analyticsv1.GetSatisfactionRequest) (store.Filter, error) {
	var bad invalid.List
	f := store.Filter{
		Tenant:  strings.TrimSpace(req.GetTenantId()),
		Aspect:  strings.TrimSpace(req.GetAspect()),
		OrgUnit: strings.TrimSpace(req.GetOrgUnit()),
	}
	if f.Tenant == "" {
		f.Tenant = rollup.DefaultTenant
	} else if !tenantRE.MatchString(f.Tenant) {
		bad.Add("tenant_id", "must match ^[a-z0-9][a-z0-9_-]{0,62}$")
	}
	if f.Aspect == "" {
		f.Aspect = satisfaction.Overall
	} else if !satisfaction.ValidAspect(f.Aspect) {
		bad.Add("aspect", satisfaction.AspectRule)
	}
	if len(f.OrgUnit) > maxOrgUnitLen {
		bad.Add("org_unit", "must be at most 200 bytes")
	}
	var fromOK, toOK bool
	f.From, fromOK = day(&bad, "from", req.GetFrom())
	f.To, toOK = day(&bad, "to", req.GetTo())
	if fromOK && toOK && !f.From.IsZero() && !f.To.IsZero() && f.From.After(f.To) {
		bad.Add("from", "must not be after to")
	}
	if err := bad.Err(); err != nil {
		return store.Filter{}, err
	}
	return f, nil
}

// day reads one bound of the period. Buckets are whole UTC days, so a bound
// must be midnight UTC; an unset bound is the zero time.
func day(bad *invalid.List, field string, ts *timestamppb.Timestamp) (time.Time, bool) {
	if ts == nil {
		return time.Time{}, true
	}
	if err := ts.CheckValid(); err != nil {
		bad.Add(field, "must be a valid timestamp")
		return time.Time{}, false
	}
	t := ts.AsTime()
	if !t.Equal(rollup.Day(t)) {
		bad.Add(field, "must be 00:00 UTC: the figures are kept per whole UTC day")
		return time.Time{}, false
	}
	return t, true
}
