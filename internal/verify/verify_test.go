package verify

import (
	"errors"
	"strings"
	"testing"
)

// The real keys and signatures are exercised end to end (test/e2e,
// signatures_test.go); these pin the pure parts.

func TestSignatureKind(t *testing.T) {
	for _, tc := range []struct{ kind, raw, want string }{
		{"commit", "tree t\nauthor a\ncommitter c\n\nmsg\n", ""},
		{"commit", "tree t\ngpgsig -----BEGIN SSH SIGNATURE-----\n x\n -----END SSH SIGNATURE-----\n\nmsg\n", "ssh"},
		{"commit", "tree t\ngpgsig -----BEGIN PGP SIGNATURE-----\n x\n\nmsg\n", "openpgp"},
		{"commit", "tree t\ngpgsig-sha256 -----BEGIN PGP SIGNATURE-----\n x\n\nmsg\n", "openpgp"},
		// A signature quoted in the message is not a signature.
		{"commit", "tree t\n\nmsg\n-----BEGIN PGP SIGNATURE-----\n", ""},
		{"tag", "object o\ntype commit\ntag v1\n\nrelease\n-----BEGIN SSH SIGNATURE-----\nx\n", "ssh"},
		{"tag", "object o\ntype commit\ntag v1\n\nrelease\n", ""},
	} {
		if got := signatureKind(tc.kind, tc.raw); got != tc.want {
			t.Errorf("signatureKind(%s, %q) = %q, want %q", tc.kind, tc.raw, got, tc.want)
		}
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct{ out, want string }{
		{"[GNUPG:] NEWSIG\n[GNUPG:] BADSIG 1234 Someone", ReasonBad},
		{"[GNUPG:] KEYEXPIRED 1\n[GNUPG:] EXPKEYSIG 1234 Old\n[GNUPG:] VALIDSIG x", ReasonExpiredKey},
		{"[GNUPG:] ERRSIG 1234 22 8 00 1 9\n[GNUPG:] NO_PUBKEY 1234", ReasonUnknownKey},
		{"Good \"git\" signature with ED25519 key SHA256:x\nNo principal matched.", ReasonUnknownKey},
		{"Good \"git\" signature with ED25519 key SHA256:x\nf:1: key has expired: verify time 2026 > valid-before 2020\nNo principal matched.", ReasonExpiredKey},
		{"Signature verification failed: incorrect signature", ReasonBad},
		{"Unable to open allowed keys file \"/x\": No such file or directory", ReasonNoKeys},
		{"something else", ReasonVerifyFailed},
	} {
		if got, _ := classify(tc.out); got != tc.want {
			t.Errorf("classify(%q) = %q, want %q", tc.out, got, tc.want)
		}
	}
}

func TestErrorSaysWhich(t *testing.T) {
	err := error(&Error{Hash: "abc", Reason: ReasonExpiredKey, Detail: "[GNUPG:] EXPKEYSIG 12 Old"})
	var ve *Error
	if !errors.As(err, &ve) || !strings.Contains(err.Error(), "refused abc: signed by a key that has expired") {
		t.Fatalf("error %q", err)
	}
	for reason := range explain {
		if explain[reason] == "" {
			t.Errorf("reason %s has no explanation", reason)
		}
	}
}
