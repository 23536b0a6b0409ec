package message_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/dispatch/internal/message"
)

func fields(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	e, ok := invalid.As(err)
	require.True(t, ok, "%v", err)
	var out []string
	for _, v := range e.Violations {
		out = append(out, v.Field)
	}
	return out
}

func TestNormalizeKind(t *testing.T) {
	script := message.Template{Kind: "script", Greeting: "您好，{name}", Body: "回访", Footer: "谢谢"}
	require.NoError(t, message.NormalizeKind(&script))
	require.Equal(t, message.AnyServiceType, script.ServiceType)
	require.Equal(t, []string{"template.greeting", "template.footer"}, fields(t, message.NormalizeKind(&message.Template{Kind: "script", Body: "x"})))
	require.Equal(t, []string{"template.channel"}, fields(t, message.NormalizeKind(&message.Template{Kind: "script", Channel: typesv1.Channel_CHANNEL_SMS,
		Greeting: "a", Body: "b", Footer: "c"})))
	reminder := message.Template{Kind: "reminder", ServiceType: "repair", Greeting: "{name}您好！", Body: "{appointment_time}上门"}
	require.NoError(t, message.NormalizeKind(&reminder))
	require.Equal(t, typesv1.Channel_CHANNEL_SMS, reminder.Channel)
	require.Equal(t, []string{"template.kind"}, fields(t, message.NormalizeKind(&message.Template{Kind: "poster", Body: "x"})))
	require.Equal(t, []string{"template.greeting", "template.body"}, fields(t, message.NormalizeKind(&message.Template{Kind: "reminder", Body: "{oops"})))
}

func TestPickKindAndRender(t *testing.T) {
	got, own := message.PickKind(nil, "default", message.KindScript, "repair")
	require.False(t, own)
	s, err := message.RenderScript(got, map[string]string{"name": "王*", "org_unit": "一店", "agent": "李娜", "service_type": "维修"})
	require.NoError(t, err)
	require.Equal(t, "您好，请问是王*吗？我是回访专员李娜。", s.Greeting)
	require.NotContains(t, s.Body, "维修", "the built-in script says no service type code")
	require.Contains(t, s.Body, "请问现在方便吗")
	require.Contains(t, s.Closing, "感谢")
	_, err = message.RenderScript(got, map[string]string{"name": "王*"})
	require.Error(t, err, "a variable without a value")

	stored := []message.Template{{Kind: message.KindScript, ServiceType: "*", Greeting: "any"}, {Kind: message.KindScript, ServiceType: "repair", Greeting: "repair"}}
	got, own = message.PickKind(stored, "default", message.KindScript, "repair")
	require.True(t, own)
	require.Equal(t, "repair", got.Greeting)
	got, _ = message.PickKind(stored, "default", message.KindScript, "purchase")
	require.Equal(t, "any", got.Greeting)
	got, own = message.PickKind(stored, "default", message.KindReminder, "repair")
	require.False(t, own)
	require.Equal(t, typesv1.Channel_CHANNEL_SMS, got.Channel)
}

func TestAppointmentTime(t *testing.T) {
	sh, err := time.LoadLocation("Asia/Shanghai")
	require.NoError(t, err)
	start := time.Date(2025, 3, 12, 2, 0, 0, 0, time.UTC)
	require.Equal(t, "3月12日 10:00-11:30", message.AppointmentTime(start, start.Add(90*time.Minute), sh))
	require.Equal(t, "3月12日 10:00-3月13日 08:00", message.AppointmentTime(start, start.Add(22*time.Hour), sh))
}
