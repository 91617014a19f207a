package fs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fetch"
)

// ClassStatus is the JSON of a class's .status file. It holds versions,
// times, sizes and errors, never secret bytes.
type ClassStatus struct {
	Class     string         `json:"class"`
	Namespace string         `json:"namespace,omitempty"`
	Source    string         `json:"source"`
	Identity  string         `json:"identity"`
	Mode      string         `json:"mode"` // keep-cache or no-open
	Objects   []ObjectStatus `json:"objects"`
}

// ObjectStatus is one object of a class in .status.
type ObjectStatus struct {
	Object string   `json:"object"` // objects[i] "name" (type)
	Files  []string `json:"files"`
	// Fetched is false until a lookup of one of the object's files
	// fetched it (the view is lazy).
	Fetched bool `json:"fetched"`
	// Version is the upstream version served (KMS VersionId, OOS
	// parameter version).
	Version   string    `json:"version,omitempty"`
	FetchedAt time.Time `json:"fetchedAt,omitzero"`
	// ChangedAt is when the view last saw the value change (the files'
	// mtime).
	ChangedAt time.Time `json:"changedAt,omitzero"`
	Size      int       `json:"size"`
	// Stale is true while the cache serves a value past its TTL because
	// refreshes fail.
	Stale       bool      `json:"stale"`
	LastError   string    `json:"lastError,omitempty"`
	LastErrorAt time.Time `json:"lastErrorAt,omitzero"`
	// FileError says why some jmesPath files keep an older value (or EIO).
	FileError string `json:"fileError,omitempty"`
	// Revoked says why the object's files answer EIO after a value was
	// served: upstream refused it for good (deleted, access revoked,
	// credential rejected). Empty again once a value is served.
	Revoked string `json:"revoked,omitempty"`
}

// statusMemo remembers the last rendering of a .status file: reads serve it,
// so the bytes match the size the kernel was just given, and its mtime only
// moves when the content does.
type statusMemo struct {
	mu    sync.Mutex
	body  []byte
	mtime time.Time
}

// render builds the current status and remembers it.
func (m *statusMemo) render(v *view, cv *classView) ([]byte, time.Time) {
	body := statusJSON(v, cv)
	m.mu.Lock()
	defer m.mu.Unlock()
	if !bytes.Equal(body, m.body) {
		now := time.Now()
		if !now.After(m.mtime) {
			now = m.mtime.Add(time.Microsecond)
		}
		m.body, m.mtime = body, now
	}
	return m.body, m.mtime
}

// last is the remembered rendering (rendering one if there is none).
func (m *statusMemo) last(v *view, cv *classView) []byte {
	m.mu.Lock()
	body := m.body
	m.mu.Unlock()
	if body == nil {
		body, _ = m.render(v, cv)
	}
	return body
}

// Status reports the state of a class (the .status file's content).
func (v *view) status(cv *classView) ClassStatus {
	mode := "keep-cache"
	if v.cfg.NoOpen {
		mode = "no-open"
	}
	st := ClassStatus{
		Class: cv.class.Name, Namespace: cv.class.Namespace, Source: cv.class.Source,
		Identity: v.id.String(), Mode: mode, Objects: []ObjectStatus{},
	}
	for _, ov := range cv.objs {
		ost := ObjectStatus{Object: ov.o.Ref()}
		for _, f := range ov.files {
			ost.Files = append(ost.Files, f.path)
		}
		ov.mu.Lock()
		key, pinned := ov.key, ov.pinned
		ost.LastError, ost.LastErrorAt = ov.lastErr, ov.lastErrAt
		ov.mu.Unlock()
		s := ov.snap.Load()
		switch {
		case s != nil && s.gone != nil:
			// Nothing is served: no version, no size, and why.
			ost.Fetched = true
			ost.Revoked = fmt.Sprintf("refused upstream (%s): the files answer EIO until upstream serves a value again: %s",
				fetch.KindOf(s.gone), s.gone.Error())
			for _, t := range s.mtime {
				if t.After(ost.ChangedAt) {
					ost.ChangedAt = t
				}
			}
		case s != nil:
			ost.Fetched = true
			ost.Version, ost.FetchedAt, ost.Size = s.entry.Version, s.entry.FetchedAt, len(s.entry.Data)
			for _, t := range s.mtime {
				if t.After(ost.ChangedAt) {
					ost.ChangedAt = t
				}
			}
			if s.derr != nil {
				ost.FileError = s.derr.Error()
			}
		}
		if pinned {
			if cs, ok := v.cache.Status(key); ok {
				if ost.Revoked == "" && (cs.FetchedAt.After(ost.FetchedAt) || cs.Version != "" && !ost.Fetched) {
					ost.Version, ost.FetchedAt, ost.Size = cs.Version, cs.FetchedAt, cs.Size
				}
				ost.Stale = cs.Stale
				if cs.LastError != "" && !cs.ErrorAt.Before(ost.LastErrorAt) {
					ost.LastError, ost.LastErrorAt = cs.LastError, cs.ErrorAt
				}
			}
		}
		st.Objects = append(st.Objects, ost)
	}
	return st
}

func statusJSON(v *view, cv *classView) []byte {
	b, err := json.MarshalIndent(v.status(cv), "", "  ")
	if err != nil {
		b = []byte(`{"error":"cannot render the status"}`)
	}
	return append(b, '\n')
}
