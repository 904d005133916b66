package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestSecretNeverPrints(t *testing.T) {
	const pw = "hunter2-very-secret"
	s := New(pw)
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("x", "s", s, "struct", struct{ P Secret }{s})
	j, _ := json.Marshal(map[string]any{"p": s})
	out := strings.Join([]string{
		fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s %q", s, s, s, s, s),
		buf.String(), string(j),
	}, "\n")
	if strings.Contains(out, pw) {
		t.Fatalf("secret leaked:\n%s", out)
	}
	if s.Reveal() != pw {
		t.Fatalf("Reveal = %q", s.Reveal())
	}
	if New("").String() != "" || !New("").IsZero() {
		t.Fatal("empty secret should print empty")
	}
}
