package load

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
)

// ArchiveHeader is the header row of the CSV archives WriteArchive writes,
// in huifang-import's column names.
const ArchiveHeader = "external_id,name,phone,email,kind,referred_by,org_unit,owner_ids,time_zone,language,dislikes_calls,opted_out,windows,source_updated_at"

// WriteArchive writes a customer archive of n records (plus the header) as
// huifang-import reads it: Chinese names, Chinese mobile numbers, one in
// ten a fleet (the others individuals), one in twenty referred by an
// earlier customer (so that referrers reach the tiers of referral counts),
// a third with contact preferences, one in five without an email; about
// 3% of the lines are repeats of a customer of the last thousand lines with
// a later source time and another email (an "updated" record). The same
// seed writes the same file.
func WriteArchive(w io.Writer, n int, seed int64) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	rng := rand.New(rand.NewPCG(uint64(seed), 0x6a09e667f3bcc908))
	if _, err := bw.WriteString(ArchiveHeader + "\n"); err != nil {
		return err
	}
	customers := 0
	buf := make([]byte, 0, 256)
	for line := range n {
		c, repeat := customers, false
		if customers > 0 && rng.IntN(100) < 3 {
			c, repeat = customers-1-rng.IntN(min(customers, 1000)), true
		} else {
			customers++
		}
		buf = appendArchiveRecord(buf[:0], rng, c, line, repeat)
		if _, err := bw.Write(buf); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// appendArchiveRecord appends the CSV line of customer c (its fields derive
// from c, so that a repeat names the same person), at line.
func appendArchiveRecord(b []byte, rng *rand.Rand, c, line int, repeat bool) []byte {
	b = append(b, "c-"...)
	b = strconv.AppendInt(b, int64(c), 10)
	b = append(b, ',')
	b = append(b, string(surnames[c%len(surnames)])...)
	b = append(b, givenNames[(c/len(surnames))%len(givenNames)]...)
	b = append(b, ',')
	b = fmt.Appendf(b, "+86%d%08d", []int{138, 139, 150, 186, 177}[c%5], c%100000000)
	b = append(b, ',')
	if c%5 != 0 {
		b = fmt.Appendf(b, "c%d", c)
		if repeat {
			b = fmt.Appendf(b, ".%d", line)
		}
		b = append(b, "@example.com"...)
	}
	b = append(b, ',')
	if c%10 == 0 {
		b = append(b, "fleet"...)
	} else {
		b = append(b, "individual"...)
	}
	b = append(b, ',')
	if c%20 == 7 && c > 100 {
		// Referrers are a few early customers, so that some gather many referrals.
		b = fmt.Appendf(b, "c-%d", rng.IntN(100))
	}
	b = fmt.Appendf(b, ",unit-%d,s-%d;s-%d,", c%20, c%50, (c+1)%50)
	if c%3 == 0 {
		b = append(b, "Asia/Shanghai,zh-CN,"...)
		if c%2 == 0 {
			b = append(b, "true"...)
		} else {
			b = append(b, "false"...)
		}
		b = append(b, ",sms,10:00-11:30;14:00-17:00,"...)
	} else {
		b = append(b, ",,,,,"...)
	}
	if repeat {
		b = append(b, "2026-11-02T00:00:00Z\n"...)
	} else {
		b = append(b, "2026-11-01T00:00:00Z\n"...)
	}
	return b
}
