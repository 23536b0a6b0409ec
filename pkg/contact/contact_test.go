package contact

import (
	"testing"
	"time"
)

var shanghai, _ = time.LoadLocation("Asia/Shanghai")

func cst(d, h, m int) time.Time { return time.Date(2026, 3, d, h, m, 0, 0, shanghai) }

// seed002 is the seed-002 etiquette: calls 10:00–11:30 and 15:30–17:00.
func seed002() Calendar {
	return Calendar{Windows: []Window{{Start: 600, End: 690}, {Start: 930, End: 1020}}, TimeZone: "Asia/Shanghai"}
}

// Seed 002: best call windows 10:00–11:30 and 15:30–17:00, in the customer's time zone.
func TestPlaceInTheSeed002Windows(t *testing.T) {
	c := seed002()
	tests := []struct {
		name  string
		at    time.Time
		voice bool
		want  time.Time
	}{
		{"inside the morning window", cst(2, 10, 15), true, cst(2, 10, 15)},
		{"before the morning window", cst(2, 8, 0), true, cst(2, 10, 0)},
		{"between the windows", cst(2, 12, 0), true, cst(2, 15, 30)},
		{"the end of a window is outside", cst(2, 11, 30), true, cst(2, 15, 30)},
		{"after the afternoon window", cst(2, 17, 5), true, cst(3, 10, 0)},
		{"SMS and email are not held to call windows", cst(2, 12, 0), false, cst(2, 12, 0)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, moves := c.Place(tc.at, tc.voice, Preferences{}, false)
			if !tc.want.Equal(got) {
				t.Fatalf("got %s, want %s", got.In(shanghai), tc.want)
			}
			if tc.want.Equal(tc.at) {
				if moves != nil {
					t.Fatalf("a time left alone has no moves, got %v", moves)
				}
				return
			}
			if moves[0].Kind != KindWindow || moves[0].Detail != "outside the contact windows 10:00–11:30, 15:30–17:00 in Asia/Shanghai" {
				t.Fatalf("move = %+v", moves[0])
			}
		})
	}
	// The customer's own zone and windows win over the tenant's.
	got, _ := c.Place(time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC), true, Preferences{TimeZone: "Europe/Berlin", Windows: []Window{{Start: 14 * 60, End: 15 * 60}}}, false)
	if want := time.Date(2026, 3, 2, 13, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Fatalf("14:00 in Berlin: got %s", got)
	}
}

func TestQuietHoursAndHolidays(t *testing.T) {
	c := Calendar{TimeZone: "Asia/Shanghai", Quiet: &Window{Start: 21 * 60, End: 8 * 60}, Holidays: []string{"2026-03-03"}, AvoidHolidays: true}
	got, moves := c.Place(cst(2, 22, 0), false, Preferences{}, false)
	if !cst(3, 8, 0).Equal(got) || moves[0].Kind != KindQuiet {
		t.Fatalf("quiet hours wrap over midnight: %s %v", got.In(shanghai), moves)
	}
	got, moves = c.Place(cst(2, 22, 0), true, Preferences{}, false)
	if !cst(4, 8, 0).Equal(got) || moves[1].Kind != KindHoliday {
		t.Fatalf("a call moves off the holiday too: %s %v", got.In(shanghai), moves)
	}
	if got, _ = c.Place(cst(3, 9, 0), true, Preferences{}, true); !cst(3, 9, 0).Equal(got) {
		t.Fatalf("a holiday step stays on the holiday: %s", got.In(shanghai))
	}
	// Quiet hours hold SMS too, with windows for voice only.
	c.Windows = []Window{{Start: 600, End: 690}}
	if got, _ = c.Place(cst(2, 7, 0), false, Preferences{}, false); !cst(2, 8, 0).Equal(got) {
		t.Fatalf("SMS at 07:00 waits for the end of quiet hours: %s", got.In(shanghai))
	}
}

// A window that ends at midnight and a customer window list out of order.
func TestWindowEdges(t *testing.T) {
	c := Calendar{TimeZone: "Asia/Shanghai"}
	p := Preferences{Windows: []Window{{Start: 20 * 60, End: MinutesPerDay}, {Start: 9 * 60, End: 10 * 60}}}
	if got, _ := c.Place(cst(2, 23, 59), true, p, false); !cst(2, 23, 59).Equal(got) {
		t.Fatalf("23:59 is inside 20:00–24:00: %s", got.In(shanghai))
	}
	if got, _ := c.Place(cst(2, 10, 0), true, p, false); !cst(2, 20, 0).Equal(got) {
		t.Fatalf("windows are taken in order of their start: %s", got.In(shanghai))
	}
}

func TestWindow(t *testing.T) {
	quiet := Window{Start: 21 * 60, End: 8 * 60}
	if !quiet.Wraps() || !quiet.Holds(23*60) || !quiet.Holds(0) || quiet.Holds(8*60) || quiet.Holds(12*60) {
		t.Fatal("a wrapping window holds the night, not the day")
	}
	for w, valid := range map[Window]bool{
		{0, MinutesPerDay}: true, {600, 690}: true, {1260, 480}: true,
		{600, 600}: false, {-1, 10}: false, {0, MinutesPerDay + 1}: false, {MinutesPerDay, 10}: false,
	} {
		if w.Valid() != valid {
			t.Errorf("%v.Valid() = %v, want %v", w, !valid, valid)
		}
	}
	if s := (Window{Start: 570, End: 1020}).String(); s != "09:30–17:00" {
		t.Errorf("String = %q", s)
	}
}

func TestLocation(t *testing.T) {
	c := Calendar{TimeZone: "Asia/Shanghai"}
	if c.Location(Preferences{}).String() != "Asia/Shanghai" {
		t.Error("the calendar's zone for a customer without one")
	}
	if c.Location(Preferences{TimeZone: "Europe/Berlin"}).String() != "Europe/Berlin" {
		t.Error("the customer's zone wins")
	}
	if (Calendar{TimeZone: "Mars/Olympus"}).Location(Preferences{}) != time.UTC {
		t.Error("an unknown zone is UTC")
	}
}

// A calendar with Zones places as one without, and a zone is loaded once:
// the second Load returns the same Location; a name that does not load is
// an error each time and UTC for Location.
func TestZones(t *testing.T) {
	var z Zones
	c := seed002()
	cached := c
	cached.Zones = &z
	p := Preferences{TimeZone: "Europe/Berlin"}
	for _, at := range []time.Time{cst(2, 8, 0), cst(2, 12, 0), cst(2, 17, 5), cst(7, 3, 0)} {
		want, wantMoves := c.Place(at, true, p, false)
		got, gotMoves := cached.Place(at, true, p, false)
		if !got.Equal(want) || len(gotMoves) != len(wantMoves) {
			t.Fatalf("at %s: got %s %v, want %s %v", at, got, gotMoves, want, wantMoves)
		}
	}
	first, err := z.Load("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := z.Load("Asia/Shanghai"); again != first {
		t.Fatalf("Asia/Shanghai loaded twice: %p, %p", first, again)
	}
	if again := cached.Location(Preferences{}); again != first {
		t.Fatalf("the calendar's zone is not the one Zones keeps: %p, %p", first, again)
	}
	if _, err := z.Load("Mars/Olympus"); err == nil {
		t.Fatal("Mars/Olympus loaded")
	}
	if loc := cached.Location(Preferences{TimeZone: "Mars/Olympus"}); loc.String() != "Asia/Shanghai" {
		t.Fatalf("an unknown customer zone falls back to the calendar's, got %s", loc)
	}
}

// BenchmarkPlace places a call in the customer's zone, loading the zone at
// every call (no Zones) and once (Zones).
func BenchmarkPlace(b *testing.B) {
	p := Preferences{TimeZone: "Asia/Chongqing"}
	at := cst(2, 8, 0)
	for _, bc := range []struct {
		name  string
		zones *Zones
	}{{"load each time", nil}, {"zones", &Zones{}}} {
		b.Run(bc.name, func(b *testing.B) {
			c := seed002()
			c.Zones = bc.zones
			for b.Loop() {
				if got, _ := c.Place(at, true, p, false); got.Equal(at) {
					b.Fatal("8:00 is outside the windows")
				}
			}
		})
	}
}
