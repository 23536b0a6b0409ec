package grpcapi_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"
)

// The rules dispatch.proto declares for SetCustomerVariables (a customer
// id that is not blank, variable names without braces or spaces: a
// template's {name} must be able to name them) refuse the request before it
// stores anything, naming each field and rule.
func TestCustomerVariablesRules(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	_, err := b.client.SetCustomerVariables(ctx, &dispatchv1.SetCustomerVariablesRequest{CustomerId: " ", Variables: map[string]string{"车型 名": "x"}})
	st := status.Convert(err)
	require.Equal(t, codes.InvalidArgument, st.Code(), "%v", err)
	got := map[string]string{}
	for _, d := range st.Details() {
		for _, v := range d.(*errdetails.BadRequest).GetFieldViolations() {
			got[v.GetField()] = v.GetDescription()
		}
	}
	require.Equal(t, map[string]string{
		"customer_id":       "is required [not_blank]",
		`variables["车型 名"]`: "must be a non-empty name without braces or spaces [variable_name]",
	}, got)

	resp, err := b.client.SetCustomerVariables(ctx, &dispatchv1.SetCustomerVariablesRequest{CustomerId: "c-1", Variables: map[string]string{"车型": "轩逸"}})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"车型": "轩逸"}, resp.GetVariables())
}
