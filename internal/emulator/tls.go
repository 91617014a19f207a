package emulator

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"sync"
	"time"
)

// CA is the in-process certificate authority that signs the TLS listener's
// certificate. Share one CA between several emulators of a test binary:
// Go reads SSL_CERT_FILE only once per process.
type CA struct {
	CertPEM []byte
	KeyPEM  []byte

	mu   sync.Mutex // guards the parsed fields: one CA may serve several emulators
	cert *x509.Certificate
	key  crypto.Signer
}

// NewCA generates a fresh ECDSA P-256 CA valid for 24 hours.
func NewCA() (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          randSerial(),
		Subject:               pkix.Name{CommonName: "alibabacloud emulator test CA", Organization: []string{"csi-secrets-store-provider-alibabacloud"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &CA{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		cert:    cert,
		key:     key,
	}, nil
}

// parse fills the parsed fields of a CA built from PEM only.
func (ca *CA) parse() error {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if ca.cert != nil && ca.key != nil {
		return nil
	}
	cb, _ := pem.Decode(ca.CertPEM)
	if cb == nil {
		return errors.New("emulator CA: CertPEM holds no PEM block")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return fmt.Errorf("emulator CA: %w", err)
	}
	kb, _ := pem.Decode(ca.KeyPEM)
	if kb == nil {
		return errors.New("emulator CA: KeyPEM holds no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return fmt.Errorf("emulator CA: %w", err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return errors.New("emulator CA: key cannot sign")
	}
	ca.cert, ca.key = cert, signer
	return nil
}

// serverCert issues a leaf for 127.0.0.1, ::1, localhost and the Alibaba
// Cloud host names the emulator may be reached under (through a CONNECT
// proxy): *.aliyuncs.com, *.<region>.aliyuncs.com and the KMS instance
// gateway names.
func (ca *CA) serverCert(region string) (tls.Certificate, error) {
	if err := ca.parse(); err != nil {
		return tls.Certificate{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	dns := []string{"localhost", "*.aliyuncs.com", "*.cryptoservice.kms.aliyuncs.com"}
	if region != "" {
		dns = append(dns, "*."+region+".aliyuncs.com")
	}
	notAfter := now.Add(23 * time.Hour)
	if ca.cert.NotAfter.Before(notAfter) {
		notAfter = ca.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: randSerial(),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:     dns,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

func randSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		panic(err)
	}
	return n
}
