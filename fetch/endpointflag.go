package fetch

import (
	"fmt"
	"sort"
	"strings"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/aliyun"
)

// EndpointFlag is a --kms-endpoint or --oos-endpoint flag: a plain endpoint
// for every region, and per-region ones given as <region>=<endpoint>, the
// flag repeated. A per-region endpoint wins over the plain one; without
// either, the region's VPC endpoint is used. As with any flag, a later value
// for the same region (or for every region) replaces an earlier one.
type EndpointFlag struct {
	Default   string
	PerRegion map[string]string
}

// String lists the flag's values as they would be given.
func (e *EndpointFlag) String() string {
	if e == nil {
		return ""
	}
	var parts []string
	if e.Default != "" {
		parts = append(parts, e.Default)
	}
	regions := make([]string, 0, len(e.PerRegion))
	for r := range e.PerRegion {
		regions = append(regions, r)
	}
	sort.Strings(regions)
	for _, r := range regions {
		parts = append(parts, r+"="+e.PerRegion[r])
	}
	return strings.Join(parts, ",")
}

// Set takes one value: <endpoint> or <region>=<endpoint>.
func (e *EndpointFlag) Set(v string) error {
	region, ep, perRegion := strings.Cut(v, "=")
	if !perRegion {
		ep = v
	}
	if _, err := ParseEndpoint(ep); err != nil {
		return err
	}
	if !perRegion {
		e.Default = ep
		return nil
	}
	if !aliyun.ValidRegion(region) {
		return fmt.Errorf("%q before \"=\" is not a region id; write <region>=<endpoint>, e.g. cn-shanghai=kms-vpc.cn-shanghai.aliyuncs.com", region)
	}
	if e.PerRegion == nil {
		e.PerRegion = map[string]string{}
	}
	e.PerRegion[region] = ep
	return nil
}
