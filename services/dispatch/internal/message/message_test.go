package message_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/dispatch/internal/message"
)

func TestRender(t *testing.T) {
	tpl := message.Template{Channel: typesv1.Channel_CHANNEL_SMS, Greeting: "{name}您好！", Body: "您的车辆首保将于{due}到期。"}
	require.NoError(t, message.Normalize(&tpl))
	vars := message.Vars(message.Builtins{Name: "王芳", CustomerID: "c-1", VisitID: "v-1", OrgUnit: "north", ServiceType: "vehicle_delivery"},
		map[string]string{"due": "3月10日", "project": "阳光4S店", "booking_number": "B-7", "advisor": "陈静"})
	_, text, err := message.Render(tpl, vars)
	require.NoError(t, err)
	// Seed 002: a greeting first; the project, booking number and advisor last.
	require.Equal(t, "王芳您好！您的车辆首保将于3月10日到期。【阳光4S店】预约号：B-7，顾问：陈静", text)

	delete(vars, "advisor")
	delete(vars, "due")
	_, _, err = message.Render(tpl, vars)
	require.EqualError(t, err, "message: no value for due, advisor")
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		name string
		in   message.Template
		bad  []string
	}{
		{"email needs only a body", message.Template{Channel: typesv1.Channel_CHANNEL_EMAIL, Body: "x"}, nil},
		{"phone is not automatic", message.Template{Channel: typesv1.Channel_CHANNEL_PHONE, Body: "x"}, []string{"template.channel"}},
		{"an SMS without greeting (seed 002)", message.Template{Channel: typesv1.Channel_CHANNEL_SMS, Body: "x"}, []string{"template.greeting"}},
		{"a broken placeholder", message.Template{Channel: typesv1.Channel_CHANNEL_EMAIL, Body: "{na me}"}, []string{"template.body"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := tc.in
			err := message.Normalize(&x)
			if tc.bad == nil {
				require.NoError(t, err)
				return
			}
			b, ok := invalid.As(err)
			require.True(t, ok, "%v", err)
			var fields []string
			for _, v := range b.Violations {
				fields = append(fields, v.Field)
			}
			require.Equal(t, tc.bad, fields)
		})
	}
}
