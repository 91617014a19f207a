// A stand-in for monis.app/mlog, which the Go module proxy this project uses
// does not serve. The driver's pkg/secrets-store calls it once
// (mlog.Fatal when its gRPC server cannot listen); the driver's command
// (built by integration/cluster) also calls Setup, Error and
// ValidateAndSetKlogLevelAndFormatGlobally. See mlog.go.
module monis.app/mlog

go 1.21
