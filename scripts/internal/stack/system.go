package stack

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"

	schedulerv1 "github.com/huifang/huifang/proto/huifang/scheduler/v1"

	"github.com/huifang/huifang/pkg/issuer"
)

// InstantPolicy is make run's demo policy, which the system tests and make
// bench use too: a phone follow-up as soon as a repair is done, in the
// default tenant (a CreatePolicyRequest in protojson).
const InstantPolicy = `{"policy":{"name":"instant","trigger":{"service_types":["repair"]},"steps":[{"offset":"0s","channel":"CHANNEL_PHONE"}]}}`

// StartWithIssuer starts the services of cfg with an issuer of their tokens
// on a free loopback port: cfg.Auth and cfg.ClientSecrets come from it, and
// cfg.Ports are picked free when unset. The caller stops both.
func StartWithIssuer(ctx context.Context, cfg Config) (*Stack, *issuer.Issuer, error) {
	is, err := issuer.Listen("127.0.0.1:0", "huifang")
	if err != nil {
		return nil, nil, fmt.Errorf("stack: issuer: %w", err)
	}
	if cfg.Ports == nil {
		if cfg.Ports, err = FreePortsFor(Instances(cfg.Replicas)...); err != nil {
			_ = is.Close()
			return nil, nil, err
		}
	}
	cfg.Auth, cfg.ClientSecrets = is.Config(), RegisterClients(is)
	st, err := New(cfg)
	if err != nil {
		_ = is.Close()
		return nil, nil, err
	}
	if err := st.StartAll(ctx); err != nil {
		_ = st.StopAll(context.WithoutCancel(ctx))
		_ = is.Close()
		return nil, nil, err
	}
	return st, is, nil
}

// CreateInstantPolicy creates InstantPolicy through the scheduler of st, as
// the default tenant's staff (issuer.StaffCalls).
func CreateInstantPolicy(ctx context.Context, st *Stack, is *issuer.Issuer) error {
	conn, err := grpc.NewClient(st.GRPCAddr("scheduler"), grpc.WithTransportCredentials(insecure.NewCredentials()), is.StaffCalls())
	if err != nil {
		return fmt.Errorf("stack: scheduler client: %w", err)
	}
	defer conn.Close()
	req := &schedulerv1.CreatePolicyRequest{}
	if err := protojson.Unmarshal([]byte(InstantPolicy), req); err != nil {
		return fmt.Errorf("stack: instant policy: %w", err)
	}
	if _, err := schedulerv1.NewSchedulerServiceClient(conn).CreatePolicy(ctx, req); err != nil {
		return fmt.Errorf("stack: CreatePolicy instant: %w", err)
	}
	return nil
}
