// Package metricstest reads the Prometheus text exposition format for tests:
// a scrape of /metrics becomes a list of samples that tests query by name
// and labels. It handles what client_golang writes (no timestamps needed).
package metricstest

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Sample is one line of the exposition: a name, its labels and a value.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// Samples is one scrape.
type Samples struct {
	List []Sample
	// Text is the raw exposition (for leak checks and failure messages).
	Text string
}

// Scrape GETs url and parses the body.
func Scrape(url string) (*Samples, error) {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return Parse(string(b))
}

// Parse reads the text format.
func Parse(text string) (*Samples, error) {
	out := &Samples{Text: text}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s, err := parseLine(line)
		if err != nil {
			return nil, fmt.Errorf("line %d %q: %w", n, line, err)
		}
		out.List = append(out.List, s)
	}
	return out, sc.Err()
}

func parseLine(line string) (Sample, error) {
	s := Sample{Labels: map[string]string{}}
	i := strings.IndexAny(line, "{ ")
	if i < 0 {
		return s, fmt.Errorf("no value")
	}
	s.Name = line[:i]
	rest := line[i:]
	if rest[0] == '{' {
		rest = rest[1:]
		for {
			rest = strings.TrimLeft(rest, ", ")
			if strings.HasPrefix(rest, "}") {
				rest = rest[1:]
				break
			}
			eq := strings.Index(rest, "=\"")
			if eq < 0 {
				return s, fmt.Errorf("bad labels")
			}
			key := rest[:eq]
			rest = rest[eq+2:]
			var val strings.Builder
			j := 0
			for ; j < len(rest); j++ {
				c := rest[j]
				if c == '\\' && j+1 < len(rest) {
					j++
					switch rest[j] {
					case 'n':
						val.WriteByte('\n')
					default:
						val.WriteByte(rest[j])
					}
					continue
				}
				if c == '"' {
					break
				}
				val.WriteByte(c)
			}
			if j >= len(rest) {
				return s, fmt.Errorf("unterminated label value")
			}
			s.Labels[key] = val.String()
			rest = rest[j+1:]
		}
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return s, fmt.Errorf("no value")
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return s, err
	}
	s.Value = v
	return s, nil
}

// Sum adds the values of every sample named name whose labels include all
// of the given label pairs (k1, v1, k2, v2, ...).
func (s *Samples) Sum(name string, kv ...string) float64 {
	var total float64
	for _, x := range s.List {
		if x.Name == name && matches(x.Labels, kv) {
			total += x.Value
		}
	}
	return total
}

// Has reports whether a sample named name with those labels exists.
func (s *Samples) Has(name string, kv ...string) bool {
	for _, x := range s.List {
		if x.Name == name && matches(x.Labels, kv) {
			return true
		}
	}
	return false
}

// Families lists the metric family names (histogram _bucket/_sum/_count
// suffixes folded) that start with prefix.
func (s *Samples) Families(prefix string) []string {
	seen := map[string]bool{}
	for _, x := range s.List {
		if !strings.HasPrefix(x.Name, prefix) {
			continue
		}
		n := x.Name
		n = strings.TrimSuffix(n, "_bucket")
		for _, suf := range []string{"_sum", "_count"} {
			if b := strings.TrimSuffix(n, suf); b != n && s.Has(b+"_bucket") {
				n = b
			}
		}
		seen[n] = true
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// LabelValues lists the values label takes on samples named name.
func (s *Samples) LabelValues(name, label string) []string {
	seen := map[string]bool{}
	for _, x := range s.List {
		if x.Name == name {
			if v, ok := x.Labels[label]; ok {
				seen[v] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

func matches(labels map[string]string, kv []string) bool {
	for i := 0; i+1 < len(kv); i += 2 {
		if labels[kv[i]] != kv[i+1] {
			return false
		}
	}
	return true
}
