package privacy

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// Masks show the last four digits of a phone, the first letter and the
// domain of an email, the first character of a name: enough to tell
// customers apart on a screen, too little to call one.
func TestMask(t *testing.T) {
	tests := []struct{ in, phone string }{
		{"+8613800138000", "*******8000"},
		{"13800138000", "*******8000"},
		{"+86 138-0013-8000", "*******8000"},
		{"+4930123456", "******3456"},
		{"0123456", "***3456"},
		{"12345", "****45"},
		{"", ""},
	}
	for _, tc := range tests {
		require.Equal(t, tc.phone, MaskPhone(tc.in), tc.in)
	}
	require.Equal(t, "w***@example.com", MaskEmail("wang@example.com"))
	require.Equal(t, "王***@例子.中国", MaskEmail("王芳@例子.中国"))
	require.Equal(t, "***", MaskEmail("@nobody"))
	require.Equal(t, "", MaskEmail(""))
	require.Equal(t, "王**", MaskName("王小明"))
	require.Equal(t, "王*", MaskName("王芳"))
	require.Equal(t, "A***", MaskName("Alice Wang"))
	require.Equal(t, "李*", MaskName("李"))
	require.Equal(t, "", MaskName("  "))
}

func TestMaskText(t *testing.T) {
	tests := []struct{ in, want string }{
		{`"phone":"+8613800138000"`, `"phone":"*******8000"`},
		{`call 138 0013 8000 or 138-0013-8000`, `call *******8000 or *******8000`},
		{`mail wang@example.com now`, `mail w***@example.com now`},
		{`"completed_at":"2026-11-28T10:00:00Z","amount_minor":"68000"`, `"completed_at":"2026-11-28T10:00:00Z","amount_minor":"68000"`},
		{`{"source_event_id":"RO-2026-000123"}`, `{"source_event_id":"RO-2026-000123"}`},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, MaskText(tc.in), tc.in)
	}
}
