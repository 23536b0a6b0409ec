package message_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/dispatch/internal/message"
)

func TestRender(t *testing.T) {
	tpl := message.Template{Channel: typesv1.Channel_CHANNEL_SMS, Greeting: "{name}您好！", Body: "您的车辆首保将于{due}到期。", Preset: message.Preset002}
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

// TestNormalizeFooter: seed 002's footer is filled in only for a template
// that asks for the seed-002 format (issue 16): a hospital's SMS has none.
func TestNormalizeFooter(t *testing.T) {
	hospital := message.Template{Channel: typesv1.Channel_CHANNEL_SMS, Greeting: "{name}您好！", Body: "请于明日上午复查。"}
	require.NoError(t, message.Normalize(&hospital))
	require.Empty(t, hospital.Footer)
	_, text, err := message.Render(hospital, message.Vars(message.Builtins{Name: "孙丽"}, nil))
	require.NoError(t, err, "no project, booking number or advisor is asked of a patient")
	require.Equal(t, "孙丽您好！请于明日上午复查。", text)

	estate := message.Template{Channel: typesv1.Channel_CHANNEL_SMS, Greeting: "{name}您好！", Body: "明天见", Preset: message.Preset002}
	require.NoError(t, message.Normalize(&estate))
	require.Equal(t, message.DefaultSMSFooter, estate.Footer)
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
		{"an SMS without a preset needs no footer", message.Template{Channel: typesv1.Channel_CHANNEL_SMS, Greeting: "{name}您好！", Body: "x"}, nil},
		{"an SMS without a preset may have any footer", message.Template{Channel: typesv1.Channel_CHANNEL_SMS, Greeting: "{name}您好！", Body: "x", Footer: "【{org}】"}, nil},
		{"preset 002 needs the project, booking number and advisor (seed 002)", message.Template{Channel: typesv1.Channel_CHANNEL_SMS, Greeting: "{name}您好！", Body: "x", Footer: "【{project}】", Preset: "002"},
			[]string{"template.footer", "template.footer"}},
		{"preset 002 is for SMS", message.Template{Channel: typesv1.Channel_CHANNEL_EMAIL, Body: "x", Preset: "002"}, []string{"template.preset"}},
		{"an unknown preset", message.Template{Channel: typesv1.Channel_CHANNEL_SMS, Greeting: "{name}您好！", Body: "x", Preset: "003"}, []string{"template.preset"}},
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
