// Package health answers the operations endpoints of serve and mount:
// /metrics, /healthz (liveness) and /readyz (readiness). Endpoints binds
// the listeners before the command starts serving, so a port clash is a
// startup error and not a half-started provider without probes. Socket
// answers for serve (its provider socket answers Version, and the view it
// may serve is mounted), View for mount. Both read the provider's own
// credentials from Credentials, a background check: a probe never calls
// ECS metadata or STS, and a slow one never holds a probe.
package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// Endpoints serves /metrics on one address and /healthz, /readyz on
// another (or the same).
type Endpoints struct {
	metricsLis, healthLis net.Listener // nil when disabled (or shared)
	servers               []*http.Server
	// MetricsAddr and HealthAddr are the bound addresses ("" when disabled).
	MetricsAddr, HealthAddr string
}

// Probes answers /healthz and /readyz: Socket or View.
type Probes interface {
	Healthz(w http.ResponseWriter, r *http.Request)
	Readyz(w http.ResponseWriter, r *http.Request)
}

// Listen binds the metrics and health listeners (flags --metrics-addr and
// --health-addr, named in errors). An empty address disables that
// endpoint; equal addresses (but two ":0") share one listener.
func Listen(metricsAddr, healthAddr string) (*Endpoints, error) {
	bind := func(flag, addr string) (net.Listener, error) {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("--%s %s: %w (is another process using the port? choose another with --%s, or \"\" to disable)", flag, addr, err, flag)
		}
		return l, nil
	}
	o := &Endpoints{}
	var err error
	if metricsAddr != "" {
		if o.metricsLis, err = bind("metrics-addr", metricsAddr); err != nil {
			return nil, err
		}
		o.MetricsAddr = o.metricsLis.Addr().String()
	}
	switch {
	case healthAddr == "":
	case healthAddr == metricsAddr && !strings.HasSuffix(healthAddr, ":0"):
		o.HealthAddr = o.MetricsAddr
	default:
		if o.healthLis, err = bind("health-addr", healthAddr); err != nil {
			o.close()
			return nil, err
		}
		o.HealthAddr = o.healthLis.Addr().String()
	}
	return o, nil
}

func (o *Endpoints) close() {
	for _, l := range []net.Listener{o.metricsLis, o.healthLis} {
		if l != nil {
			_ = l.Close()
		}
	}
}

// Serve starts the HTTP servers. A server that stops on its own (not by
// Shutdown) reports on the returned channel.
func (o *Endpoints) Serve(metrics http.Handler, p Probes) <-chan error {
	errc := make(chan error, 2)
	mm := http.NewServeMux()
	hm := mm
	if o.healthLis != nil {
		hm = http.NewServeMux()
	}
	if o.metricsLis != nil {
		mm.Handle("/metrics", metrics)
	}
	if o.HealthAddr != "" {
		hm.HandleFunc("/healthz", p.Healthz)
		hm.HandleFunc("/readyz", p.Readyz)
	}
	start := func(l net.Listener, mux *http.ServeMux) {
		if l == nil {
			return
		}
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
		o.servers = append(o.servers, srv)
		go func() {
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("HTTP server on %s stopped: %w", l.Addr(), err)
			}
		}()
	}
	start(o.metricsLis, mm)
	start(o.healthLis, hm)
	return errc
}

// Shutdown stops the servers (within 5s) and closes the listeners.
func (o *Endpoints) Shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range o.servers {
		_ = s.Shutdown(ctx)
	}
	o.close()
}
