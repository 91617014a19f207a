package emulator

import (
	"encoding/base64"
	"math"
	"net/http"
	"strconv"
)

// intParam reads an integer parameter: def when it is absent, a 400
// InvalidParameter when it is not an integer from lo to hi.
func intParam(c *call, name string, def, lo, hi int) (int, *apiError) {
	s := c.params.Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		if hi == math.MaxInt32 {
			return 0, errf(http.StatusBadRequest, "InvalidParameter", "The parameter %s must be an integer of at least %d, got %q.", name, lo, s)
		}
		return 0, errf(http.StatusBadRequest, "InvalidParameter", "The parameter %s must be an integer from %d to %d, got %q.", name, lo, hi, s)
	}
	return n, nil
}

// pageBounds returns the [from, to) slice bounds of page number (from 1)
// of size pageSize over total items.
func pageBounds(total, number, size int) (from, to int) {
	from = (number - 1) * size
	if from > total || from < 0 { // from < 0: overflow on huge page numbers
		return total, total
	}
	return from, min(from+size, total)
}

// Pagination tokens (OOS NextToken) are opaque to callers: base64 of the
// position to resume after, which the emulator checks on the way back.
func encodeToken(pos string) string { return base64.RawURLEncoding.EncodeToString([]byte(pos)) }

func decodeToken(c *call) (pos string, ok bool, err *apiError) {
	tok := c.params.Get("NextToken")
	if tok == "" {
		return "", false, nil
	}
	b, decErr := base64.RawURLEncoding.DecodeString(tok)
	if decErr != nil || len(b) == 0 {
		return "", false, errf(http.StatusBadRequest, "InvalidParameter", "The parameter NextToken is invalid.")
	}
	return string(b), true, nil
}
