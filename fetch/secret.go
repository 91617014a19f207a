package fetch

import (
	"fmt"
	"strconv"
)

// Bytes holds secret material. Every way fmt, log/slog or encoding/json can
// print it yields a redaction, so a log line or an error built with %v, %s,
// %q or %x cannot leak a value. Use Reveal to get the raw bytes.
type Bytes []byte

// Reveal returns the raw bytes. Callers must not log them.
func (b Bytes) Reveal() []byte { return []byte(b) }

func (b Bytes) redacted() string { return "[REDACTED " + strconv.Itoa(len(b)) + " bytes]" }

// String implements fmt.Stringer with a redaction.
func (b Bytes) String() string { return b.redacted() }

// GoString implements fmt.GoStringer with a redaction.
func (b Bytes) GoString() string { return b.redacted() }

// Format implements fmt.Formatter so that every verb prints a redaction.
func (b Bytes) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(b.redacted())) }

// MarshalJSON implements json.Marshaler with a redaction.
func (b Bytes) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(b.redacted())), nil }

// MarshalText implements encoding.TextMarshaler with a redaction (slog uses it).
func (b Bytes) MarshalText() ([]byte, error) { return []byte(b.redacted()), nil }
