// Package textutil holds the one helper that shortens untrusted text (an
// attribute, an upstream body, an error) before it reaches a message or a
// log line.
package textutil

import (
	"strconv"
	"unicode/utf8"
)

// Truncate returns s if it is at most n bytes, else its first n bytes, cut
// back to a rune boundary, followed by "…".
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := max(n, 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// Clip is Truncate for a value quoted in a log line or a message when the
// reader may need to know it was cut: past n bytes it also gives the
// original length, as in "ppp… (250000 bytes)".
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return Truncate(s, n) + " (" + strconv.Itoa(len(s)) + " bytes)"
}
