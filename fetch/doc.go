// Package fetch owns what to fetch and how: the parsed, validated
// SecretProviderClass parameters (objects, region, pathTranslation), the one
// naming function that turns an object into file names, the KMS and OOS
// sources (thin adapters over the official SDK clients), and the ONE
// node-wide cache that every Mount and the FUSE view read through.
//
// Retries, the node-wide rate limits, the concurrency bound and
// stale-if-error wrap the sources once, in the cache's fetch path. Secret
// bytes travel as Bytes, whose every printing form is a redaction.
package fetch
