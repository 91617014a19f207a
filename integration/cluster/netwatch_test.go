package cluster

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// netWatch samples, once a second, every TCP and connected UDP socket of the
// cluster's and the product's processes, and records each one whose peer is
// not an address of this machine. The suite fails if it recorded any.
type netWatch struct {
	stopc chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	bad   map[string]bool
	polls int
}

// clusterProcs are the executables (comm, at most 15 bytes) of the node, the
// product and the test itself; every descendant of a containerd shim (the
// pods' processes) counts too.
var clusterProcs = map[string]bool{
	"etcd": true, "kube-apiserver": true, "kube-controller": true, "kube-scheduler": true,
	"kubelet": true, "containerd": true, "containerd-shim": true, "runc": true,
	"helm": true, "kubectl": true, "cluster.test": true,
}

func startNetWatch() *netWatch {
	w := &netWatch{stopc: make(chan struct{}), done: make(chan struct{}), bad: map[string]bool{}}
	go func() {
		defer close(w.done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			w.sample()
			select {
			case <-w.stopc:
				w.sample()
				return
			case <-t.C:
			}
		}
	}()
	return w
}

// stop ends the sampling and returns what was found, sorted.
func (w *netWatch) stop() []string {
	close(w.stopc)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, 0, len(w.bad))
	for k := range w.bad {
		out = append(out, k)
	}
	sort.Strings(out)
	if w.polls == 0 {
		out = append(out, "the connection watch never sampled /proc/net")
	}
	return out
}

func (w *netWatch) sample() {
	local := localAddrs()
	var peers []sockPeer
	for _, f := range []string{"tcp", "tcp6", "udp", "udp6"} {
		peers = append(peers, readSockets("/proc/net/"+f, f)...)
	}
	var foreign []sockPeer
	for _, p := range peers {
		if !local[p.remote.String()] && !p.remote.IsLoopback() && !p.remote.IsUnspecified() {
			foreign = append(foreign, p)
		}
	}
	w.mu.Lock()
	w.polls++
	w.mu.Unlock()
	if len(foreign) == 0 {
		return
	}
	owners := socketOwners()
	for _, p := range foreign {
		pid, ok := owners[p.inode]
		if !ok || !isClusterProc(pid) {
			continue
		}
		w.mu.Lock()
		w.bad[fmt.Sprintf("%s -> %s (pid %d %s)", p.proto, net.JoinHostPort(p.remote.String(), strconv.Itoa(p.port)), pid, comm(pid))] = true
		w.mu.Unlock()
	}
}

type sockPeer struct {
	proto  string
	remote net.IP
	port   int
	inode  string
}

// readSockets parses /proc/net/{tcp,udp}[6]: sockets with a peer (not
// listening, not unconnected UDP).
func readSockets(path, proto string) []sockPeer {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []sockPeer
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 {
			continue
		}
		if strings.HasPrefix(proto, "tcp") && fields[3] == "0A" { // LISTEN
			continue
		}
		ip, port, ok := parseHexAddr(fields[2])
		if !ok || port == 0 {
			continue
		}
		out = append(out, sockPeer{proto: proto, remote: ip, port: port, inode: fields[9]})
	}
	return out
}

// parseHexAddr decodes "0100007F:1F90" (little-endian 32-bit words).
func parseHexAddr(s string) (net.IP, int, bool) {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return nil, 0, false
	}
	raw, err := hex.DecodeString(h)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return nil, 0, false
	}
	ip := make(net.IP, len(raw))
	for i := 0; i < len(raw); i += 4 {
		ip[i], ip[i+1], ip[i+2], ip[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	port, err := strconv.ParseInt(p, 16, 32)
	if err != nil {
		return nil, 0, false
	}
	if v4 := ip.To4(); v4 != nil {
		ip = v4
	}
	return ip, int(port), true
}

func localAddrs() map[string]bool {
	m := map[string]bool{}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return m
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			ip := n.IP
			if v4 := ip.To4(); v4 != nil {
				ip = v4
			}
			m[ip.String()] = true
		}
	}
	return m
}

// socketOwners maps socket inodes to a pid holding them.
func socketOwners() map[string]int {
	m := map[string]int{}
	procs, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range procs {
		l, err := os.Readlink(fd)
		if err != nil || !strings.HasPrefix(l, "socket:[") {
			continue
		}
		pid, err := strconv.Atoi(strings.Split(fd, "/")[2])
		if err != nil {
			continue
		}
		m[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = pid
	}
	return m
}

func comm(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}

func ppid(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// isClusterProc: the process or one of its ancestors is the node's, the
// product's or the test's.
func isClusterProc(pid int) bool {
	for i := 0; pid > 1 && i < 64; i++ {
		c := comm(pid)
		if clusterProcs[c] || strings.HasPrefix(c, "containerd-shim") {
			return true
		}
		pid = ppid(pid)
	}
	return false
}
