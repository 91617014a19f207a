// Package emulator is a local, in-process emulator of the Alibaba Cloud
// services the provider talks to: KMS GetSecretValue, ListSecretVersionIds
// and ListSecrets (2016-01-20); OOS GetSecretParameter, GetSecretParameters,
// ListSecretParameterVersions and GetSecretParametersByPath for encrypted
// parameters and GetParameter, GetParameters, ListParameterVersions and
// GetParametersByPath for plain ones (2019-06-01); STS AssumeRole and
// AssumeRoleWithOIDC
// (2015-04-01; tokens are verified against registered OIDC providers, see
// SetOIDCProvider), the ECS metadata service (100.100.100.200) and a
// credentials-URI endpoint. It is faithful enough for the real Go SDKs
// (kms-20160120/v3, oos-20190601/v4, credentials-go) to work unmodified:
// it verifies ACS3-HMAC-SHA256 and v1 HMAC-SHA1 signatures, answers the
// real response shapes and error bodies, and can inject faults. The wire
// protocol facts it relies on (routing, both signature schemes, reply
// shapes, error codes and what the SDKs make of them) are in
// docs/emulator.md at the root of this repository.
//
// It is a normal package: the `dev` subcommand runs it for a demo, and the
// end-to-end tests start one per test.
//
// # What it owns
//
//   - State: AccessKeys, issued STS sessions, KMS secrets with versions,
//     stages, creation times and tags, OOS encrypted and plain parameters
//     with versions, RAM roles and their trust, OIDC providers (issuer and
//     JWKS), per-principal allow/deny policies (by RAM action name, see the
//     Action constants), the metadata identity. Seeded from YAML
//     (ParseSeed, see Seed) or DemoSeed.
//   - Regions: the primary region (Region()) is served on the ports below.
//     AddRegion (or Seed.Regions) serves KMS and OOS for another region on
//     an HTTP and a TLS port of its own (RegionURL, RegionEndpoint,
//     RegionTLSEndpoint) with its own secrets and parameters, its own down
//     switch (SetRegionDown) and faults scoped to it (Fault.Region); the
//     identities are shared, so one AccessKey or STS session works in every
//     region. Replies name the serving region (ARNs, HostId).
//   - Listeners on 127.0.0.1: a plain HTTP port (API, control API, and an
//     HTTP forward proxy for 100.100.100.200 and for loopback targets) and a
//     TLS port (same handlers; STS must be HTTPS because credentials-go
//     hard-codes it) whose certificate comes from an in-process CA written
//     to CAFile() for SSL_CERT_FILE or openapi Config.Ca.
//   - Observability: per-call counters keyed by (region, route, action,
//     principal, resource, outcome) and a ring of recent requests. Neither
//     ever holds secret values, AccessKey secrets, tokens or signatures.
//     Calls, CallsFor and CallsBy count every region; CallsIn counts one,
//     CallsAction one action.
//   - Objects appear and disappear under test control: PutSecretValue,
//     PutParameter, PutPlainParameter (and their ...In variants for a
//     region), SetSecretTags, DeleteSecret, DeleteParameter,
//     DeletePlainParameter.
//
// # Pointing the SDKs at it
//
//	openapi.Config{Endpoint: tea.String(e.Endpoint()), Protocol: tea.String("HTTP"), RegionId: tea.String("cn-hangzhou"), ...}
//	credentials.Config{Type: "ram_role_arn", STSEndpoint: e.TLSEndpoint(), ...}      // SSL_CERT_FILE=e.CAFile()
//	providers.NewECSRAMRoleCredentialsProviderBuilder().WithHttpOptions(&providers.HttpOptions{Proxy: e.ProxyURL()})
//	credentials.Config{Type: "credentials_uri", Url: e.URL() + "/_emulator/credentials-uri"}
//	openapi.Config{Endpoint: tea.String(e.RegionEndpoint("cn-shanghai")), Protocol: tea.String("HTTP"), RegionId: tea.String("cn-shanghai"), ...}
//
// # Control API
//
// Under /_emulator/ on the HTTP port, JSON, no signature:
//
//	GET    /_emulator/                 route list and example commands
//	GET    /_emulator/healthz          liveness and down state (regionsDown: every region's)
//	GET    /_emulator/regions          served regions: name, primary, url, tlsEndpoint, down
//	GET    /_emulator/counters         counters by region/route/action/principal/resource/outcome
//	GET    /_emulator/requests         recent requests (?limit=N&route=kms)
//	GET    /_emulator/state            names, versions, stages, tags, per region (no values)
//	POST   /_emulator/reset            clear counters, requests, faults, down (?state=true: reload the seed)
//	GET    /_emulator/faults           installed faults
//	POST   /_emulator/faults           add a fault (JSON Fault; ?region= scopes it), returns {"id"}
//	DELETE /_emulator/faults           clear all faults
//	DELETE /_emulator/faults/{id}      clear one fault
//	POST   /_emulator/down             every API connection is reset (ports unchanged); ?region= one region's
//	POST   /_emulator/up               serve again (?region= likewise)
//	POST   /_emulator/kms/secrets      new secret version {"name","value"} or {"name","base64"}, optional "tags"
//	DELETE /_emulator/kms/secrets      delete a secret with every version (?name=)
//	POST   /_emulator/kms/secret-tags  replace a secret's tags {"name","tags"}
//	POST   /_emulator/oos/parameters   new encrypted parameter version {"name","value"}
//	DELETE /_emulator/oos/parameters   delete an encrypted parameter (?name=)
//	POST   /_emulator/oos/plain-parameters    new plain parameter version {"name","value"[,"type":"StringList"]}
//	DELETE /_emulator/oos/plain-parameters    delete a plain parameter (?name=)
//	POST   /_emulator/sts/expire       expire every issued STS session
//	GET    /_emulator/sts/oidc-providers  registered OIDC providers (arn, issuer, kids)
//	POST   /_emulator/sts/oidc-providers  register or replace a verified OIDC provider {"arn","issuer","jwks"}
//	DELETE /_emulator/sts/oidc-providers  unregister one (?arn=<arn>)
//	GET    /_emulator/credentials-uri  STS credentials for ALIBABA_CLOUD_CREDENTIALS_URI (?role=<arn>)
//
// Examples, with URL=http://127.0.0.1:PORT:
//
//	curl -s $URL/_emulator/counters
//	curl -s "$URL/_emulator/requests?limit=5"
//	curl -s -X POST $URL/_emulator/kms/secrets -d '{"name":"demo-db","value":"{\"username\":\"testuser\",\"password\":\"rotated\"}"}'
//	curl -s -X POST $URL/_emulator/oos/parameters -d '{"name":"test","value":"v2"}'
//	curl -s -X POST "$URL/_emulator/oos/plain-parameters?region=cn-shanghai" -d '{"name":"/app/prod/endpoint","value":"db:5432"}'
//	curl -s -X DELETE "$URL/_emulator/kms/secrets?name=demo-db"
//	curl -s -X POST "$URL/_emulator/faults?region=cn-hangzhou" -d '{"kind":"error","status":503}'
//	curl -s -X POST "$URL/_emulator/down?region=cn-shanghai"
//	curl -s -X POST $URL/_emulator/faults -d '{"route":"kms","kind":"throttle","count":1}'
//	curl -s -X POST $URL/_emulator/faults -d '{"route":"oos","resource":"test","kind":"latency","latency":"2s"}'
//	curl -s -X POST $URL/_emulator/faults -d '{"route":"kms","kind":"error","status":503,"everyNth":2}'
//	curl -s -X DELETE $URL/_emulator/faults
//	curl -s -X POST $URL/_emulator/sts/oidc-providers -d '{"arn":"acs:ram::1234567890123456:oidc-provider/ack-rrsa-cdemo","issuer":"'"$ISSUER"'","jwks":'"$(kubectl get --raw /openid/v1/jwks)"'}'
//	curl -s -X POST $URL/_emulator/down; curl -s -X POST $URL/_emulator/up
//	curl -s -H 'X-aliyun-ecs-metadata-token: '"$(curl -s -X PUT -H 'X-aliyun-ecs-metadata-token-ttl-seconds: 60' $URL/latest/api/token)" $URL/latest/meta-data/region-id
//
// The put, delete and tag endpoints take ?region=<region> (default: the
// primary); an unknown region is a 404.
//
// Fault kinds (see FaultKind): latency, hang, throttle, error, text, reset,
// close, malformed, deny; scoped by region, route (kms, oos, sts, imds,
// uri), action, resource glob and principal glob; one-shot (count), every
// Nth (everyNth) or until cleared.
//
// # OIDC verification
//
// AssumeRoleWithOIDC with an OIDCProviderArn that has a registered provider
// (Seed.OIDCProviders, SetOIDCProvider, POST /_emulator/sts/oidc-providers)
// verifies the token like STS does: a JWS with alg RS256 or ES256 (none and
// every other alg are refused), its kid naming a key of the provider's JWKS
// (without a kid, any key may verify it), a valid signature, iss equal to
// the provider's issuer, exp in the future, nbf (if present) not more than
// 30s in the future, and aud containing sts.aliyuncs.com. A failure answers
// 400 InvalidParameter.OIDCToken with a message naming the failed check
// (never the token). The role's trust (oidcProviderArn, oidcSubjects,
// oidcTokens) is checked after that. For provider ARNs without a registered
// provider the token's claims are read without any signature check, so
// FakeOIDCToken works.
package emulator
