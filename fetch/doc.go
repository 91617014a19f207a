// Package fetch owns what to fetch and how: the parsed, validated
// SecretProviderClass parameters (objects, region, pathTranslation), the one
// naming function that turns an object into file names, the KMS and OOS
// sources (thin adapters over the official SDK clients), and the ONE
// node-wide cache that every Mount and the FUSE view read through.
//
// Retries, the node-wide rate limits, the concurrency bound and
// stale-if-error wrap the sources once, in the cache's fetch path. Secret
// bytes travel as Bytes, whose every printing form is a redaction.
//
// # The cache's store
//
// The cache keeps its records in a plain map under a read-write lock: a hit
// takes the read lock and stores the read time in the record (an atomic), so
// no write lock is taken on the warm path. Freshness (TTL), stale-if-error
// (MaxStale) and refresh-ahead are decided per entry from its FetchedAt; idle
// eviction (IdleEvict since the last read, never while pinned) is done by the
// same periodic sweep in Cache.Run that starts the refreshes.
//
// github.com/patrickmn/go-cache was used for the map and the idle expiry and
// is not any more: its expiry was a second TTL beside the entries' own, its
// sliding expiry took its write lock on every hit, and its janitor goroutine
// belonged to no one (it ended only when the cache was garbage collected).
//
// # Goroutines
//
// Every goroutine the cache starts (a fetch that outlives the caller who
// gave up on it, a refresh-ahead) runs under the cache's lifetime: when
// Run's context ends they are canceled, and Run returns only after the last
// has returned. Sources start none: a read runs on the caller's goroutine
// and ends with its context (the KMS call included, through the SDK's
// context-aware request path).
package fetch
