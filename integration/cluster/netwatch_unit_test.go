package cluster

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

// The connection watch must see a peer off the machine; checked on a
// /proc/net/tcp written here (nothing is dialled).
func TestReadSocketsFindsForeignPeers(t *testing.T) {
	table := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0000000000000000 100 0 0 10 0
   1: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 222 1 0000000000000000 20 4 30 10 -1
   2: 0A00020F:D431 08080808:01BB 01 00000000:00000000 00:00000000 00000000     0        0 333 1 0000000000000000 20 4 30 10 -1
`
	p := filepath.Join(t.TempDir(), "tcp")
	if err := os.WriteFile(p, []byte(table), 0o600); err != nil {
		t.Fatal(err)
	}
	got := readSockets(p, "tcp")
	if len(got) != 2 {
		t.Fatalf("readSockets: %d peers, want 2 (the listener is skipped): %+v", len(got), got)
	}
	if !got[0].remote.IsLoopback() || got[0].port != 0x1F90 || got[0].inode != "222" {
		t.Errorf("loopback peer parsed as %+v", got[0])
	}
	if !got[1].remote.Equal(net.IPv4(8, 8, 8, 8)) || got[1].port != 443 || got[1].inode != "333" {
		t.Errorf("foreign peer parsed as %+v", got[1])
	}
}

func TestParseHexAddrIPv6(t *testing.T) {
	ip, port, ok := parseHexAddr("00000000000000000000000001000000:0050")
	if !ok || !ip.Equal(net.IPv6loopback) || port != 80 {
		t.Errorf("parseHexAddr(::1:80) = %v %d %v", ip, port, ok)
	}
}
