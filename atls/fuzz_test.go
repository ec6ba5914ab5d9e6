package atls

import (
	"context"
	"crypto/sha256"
	"testing"
)

// FuzzTaggedEvidence feeds arbitrary bytes as Gramine's tagged evidence
// and claims. Nothing may panic, and claims are accepted only if they
// carry exactly the key hash asked for.
func FuzzTaggedEvidence(f *testing.F) {
	c, _ := claims([]byte("spki"))
	ev, _ := cborEnc.Marshal(map[string]any{})
	f.Add(ev, c)
	f.Add([]byte{0xd9, 0xea, 0x60, 0x82, 0x41, 0x00, 0x41, 0x00}, c)
	key := sha256.Sum256([]byte("spki"))
	f.Fuzz(func(t *testing.T, evidence, cl []byte) {
		parseTaggedEvidence(evidence)
		if checkClaims(cl, key) == nil {
			want, _ := claims([]byte("spki"))
			var m map[string][]byte
			if cborDec.Unmarshal(cl, &m) != nil {
				t.Fatalf("accepted claims that are not a map: %x (want like %x)", cl, want)
			}
		}
	})
}

func TestEvidenceOfGarbageCertificate(t *testing.T) {
	cert, err := NewCertificate(context.Background(), platform.Attester(serverID), CertOptions{}, GramineStandard)
	if err != nil {
		t.Fatal(err)
	}
	for i := range cert.Leaf.Extensions {
		if cert.Leaf.Extensions[i].Id.Equal(OIDTaggedEvidence) {
			v := cert.Leaf.Extensions[i].Value
			for n := 0; n < len(v); n += 97 {
				cert.Leaf.Extensions[i].Value = v[:n]
				if _, _, err := VerifyCertificate(context.Background(), cert.Leaf, verifier, policyFor(serverID)); err == nil {
					t.Fatalf("evidence truncated to %d bytes accepted", n)
				}
			}
		}
	}
}
