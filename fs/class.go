package fs

import (
	"fmt"
	"sort"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/spc"
)

// StatusFile is the per-class status file; no object may use its name.
const StatusFile = ".status"

// CheckClasses applies the view's own rules on top of spc's: class names
// differ (each is a directory of the view) and no object's file is named
// StatusFile. Mount checks its classes with it; call it after spc.Load to
// refuse such a class before anything starts.
func CheckClasses(cs []*spc.Class) error {
	if err := spc.CheckNames(cs); err != nil {
		return err
	}
	for _, c := range cs {
		for _, o := range c.Spec.Objects {
			for _, f := range o.Paths() {
				if f == StatusFile {
					return &spc.Error{Source: c.Source, Class: c.Name, Field: fmt.Sprintf("spec.parameters.objects[%d]", o.Index),
						Msg: fmt.Sprintf("file %q is reserved for the FUSE view's status file; set objectAlias to another name", f)}
				}
			}
		}
	}
	return nil
}

// sortClasses orders the view's classes by name.
func sortClasses(cs []*spc.Class) {
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].Name < cs[j].Name })
}
