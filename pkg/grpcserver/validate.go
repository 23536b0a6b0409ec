package grpcserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"buf.build/go/protovalidate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/huifang/huifang/pkg/invalid"
)

// validation holds every request to the rules its .proto declares
// ((buf.validate.field) and CEL annotations, protovalidate): a request that
// breaks one is refused InvalidArgument with a BadRequest field violation
// per broken rule, before the handler runs. It is the innermost
// interceptor, after the guard: an unknown caller learns nothing about the
// shape of a request.
type validation struct {
	v   protovalidate.Validator
	log *slog.Logger
}

func newValidation(log *slog.Logger) (*validation, error) {
	v, err := protovalidate.New()
	if err != nil {
		return nil, fmt.Errorf("grpcserver: protovalidate: %w", err)
	}
	return &validation{v: v, log: log}, nil
}

func (x *validation) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := x.check(ctx, req); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (x *validation) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, &validatedStream{ServerStream: ss, x: x})
}

// validatedStream checks every message the client sends on a stream (the
// request of a server-streaming call) as it is received.
type validatedStream struct {
	grpc.ServerStream
	x *validation
}

func (s *validatedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return s.x.check(s.Context(), m)
}

// check returns nil when req keeps its rules, else the status error of the
// broken ones (Status of an *invalid.Error).
func (x *validation) check(ctx context.Context, req any) error {
	msg, ok := req.(proto.Message)
	if !ok {
		return status.Error(codes.Internal, "grpcserver: request is not a protobuf message")
	}
	err := x.v.Validate(msg)
	if err == nil {
		return nil
	}
	if bad, ok := Violations(err); ok {
		return Status(ctx, x.log, bad)
	}
	// A rule that does not compile: a fault of the .proto, not of the caller.
	x.log.ErrorContext(ctx, "request rules cannot be evaluated", "message", msg.ProtoReflect().Descriptor().FullName(), "err", err)
	return status.Error(codes.Internal, "internal error")
}

// Violations turns protovalidate's refusal into the project's shape of bad
// input: one invalid.Violation per broken rule, Field the path of the field
// ("agent.id", "records[2].customer.phone"), Rule what it must be followed
// by the rule's id in brackets ("is required [required]", "must be at most
// 500 [int32.lte]"). ok is false when err is not a *protovalidate.ValidationError.
func Violations(err error) (*invalid.Error, bool) {
	var ve *protovalidate.ValidationError
	if !errors.As(err, &ve) {
		return nil, false
	}
	var l invalid.List
	for _, v := range ve.Violations {
		p := v.Proto
		rule := strings.TrimPrefix(p.GetMessage(), "value ")
		if id := p.GetRuleId(); id != "" {
			rule += " [" + id + "]"
		}
		l.Add(protovalidate.FieldPathString(p.GetField()), rule)
	}
	if l.Err() == nil {
		return nil, false
	}
	bad, _ := invalid.As(l.Err())
	return bad, true
}
