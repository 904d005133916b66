package gitconfig

import (
	"reflect"
	"testing"
)

func TestParse(t *testing.T) {
	type e = Entry
	tests := []struct {
		in   string
		want []Entry
	}{
		{"", nil},
		{"a.b:c", []e{{Key: "a.b", Value: "c"}}},
		{"a.b:c,d.e:f", []e{{Key: "a.b", Value: "c"}, {Key: "d.e", Value: "f"}}},
		{"a.b:", []e{{Key: "a.b", Value: ""}}},
		{"a.b:,c.d:", []e{{Key: "a.b"}, {Key: "c.d"}}},
		{"a.b:x:y:z", []e{{Key: "a.b", Value: "x:y:z"}}},
		{"a.b:1, c.d:2", []e{{Key: "a.b", Value: "1"}, {Key: "c.d", Value: "2"}}},
		{"a.b: spaced value ", []e{{Key: "a.b", Value: " spaced value "}}},
		{`a.b:say "hi"`, []e{{Key: "a.b", Value: `say "hi"`}}},

		// Escapes in unquoted values.
		{`a.b:x\ny`, []e{{Key: "a.b", Value: "x\ny"}}},
		{`a.b:x\ty`, []e{{Key: "a.b", Value: "x\ty"}}},
		{`a.b:x\"y`, []e{{Key: "a.b", Value: `x"y`}}},
		{`a.b:x\,y`, []e{{Key: "a.b", Value: "x,y"}}},
		{`a.b:x\\y`, []e{{Key: "a.b", Value: `x\y`}}},
		{`a.b:\\,c.d:e`, []e{{Key: "a.b", Value: `\`}, {Key: "c.d", Value: "e"}}},

		// Quoted values.
		{`a.b:"x,y:z"`, []e{{Key: "a.b", Value: "x,y:z"}}},
		{`a.b:"x\ny"`, []e{{Key: "a.b", Value: "x\ny"}}},
		{`a.b:"x\ty"`, []e{{Key: "a.b", Value: "x\ty"}}},
		{`a.b:"x\"y"`, []e{{Key: "a.b", Value: `x"y`}}},
		{`a.b:"x\,y"`, []e{{Key: "a.b", Value: "x,y"}}},
		{`a.b:"x\\y"`, []e{{Key: "a.b", Value: `x\y`}}},
		{`a.b:"",c.d:"e"`, []e{{Key: "a.b"}, {Key: "c.d", Value: "e"}}},

		// Quoted keys.
		{`"url.https://host/.insteadOf":git@host:`, []e{{Key: "url.https://host/.insteadOf", Value: "git@host:"}}},
		{`"a.b,c":d`, []e{{Key: "a.b,c", Value: "d"}}},
		{`"a.x\ny":v`, []e{{Key: "a.x\ny", Value: "v"}}},
		{`"a.x\ty":v`, []e{{Key: "a.x\ty", Value: "v"}}},
		{`"a.\"q\".b":v`, []e{{Key: `a."q".b`, Value: "v"}}},
		{`"a.x\,y":v`, []e{{Key: "a.x,y", Value: "v"}}},
		{`"a.x\\y":v`, []e{{Key: `a.x\y`, Value: "v"}}},
		{`" a.b ":v`, []e{{Key: " a.b ", Value: "v"}}},
		{`"k.a":"v:1","k.b":v2`, []e{{Key: "k.a", Value: "v:1"}, {Key: "k.b", Value: "v2"}}},

		// git's own subsection quoting inside an unquoted key.
		{`url."https://host/".insteadOf:git@host:`, []e{{Key: "url.https://host/.insteadOf", Value: "git@host:"}}},
		{`url."a,b:c\"d".x:v`, []e{{Key: `url.a,b:c"d.x`, Value: "v"}}},

		// Escapes in unquoted keys.
		{`a.x\\y:v`, []e{{Key: `a.x\y`, Value: "v"}}},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Parse(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{":v", "empty key at position 1"},
		{`"":v`, "empty key at position 1"},
		{"  :v", "empty key at position 1"},
		{"a.b:c,", "empty key at position 7"},
		{"a.b:c,,d.e:f", "empty key at position 7"},
		{",a.b:c", "empty key at position 1"},
		{"a.b", "missing ':' after the key at position 4"},
		{"a.b:c,d.e", "missing ':' after the key at position 10"},
		{"a.b,c.d:e", "missing ':' after the key at position 4"},
		{`"a.b"`, "missing ':' after the key at position 6"},
		{`"a.b`, "unterminated quoted key starting at position 1"},
		{`"a.b:c`, "unterminated quoted key starting at position 1"},
		{`a.b:"c`, "unterminated quoted value starting at position 5"},
		{`a.b:c,d.e:"f\"`, "unterminated quoted value starting at position 11"},
		{`url."x.y:v`, "unterminated quoted subsection starting at position 5"},
		{`"a.b"x:v`, `unexpected 'x' after the closing quote at position 6, want ':'`},
		{`"a".b:v`, `unexpected '.' after the closing quote at position 4, want ':'`},
		{`a.b:"c"d`, `unexpected 'd' after the closing quote at position 8, want ',' or the end`},
		{`a.b:"c" ,d.e:f`, `unexpected ' ' after the closing quote at position 8, want ',' or the end`},
		{`a.b:x\qy`, `invalid escape "\q" at position 6 (want \n, \t, \", \, or \\)`},
		{`a.b:x\:y`, `invalid escape "\:" at position 6 (want \n, \t, \", \, or \\)`},
		{`a.b:"x\ry"`, `invalid escape "\r" at position 7 (want \n, \t, \", \, or \\)`},
		{`"a.\b":v`, `invalid escape "\b" at position 4 (want \n, \t, \", \, or \\)`},
		{`a.\:b:v`, `invalid escape "\:" at position 3 (want \n, \t, \", \, or \\)`},
		{`a.b:x\é`, `invalid escape "\é" at position 6 (want \n, \t, \", \, or \\)`},
		{`a.b:x\`, "unfinished escape at position 6 (backslash at the end)"},
		{`a.b:"x\`, "unfinished escape at position 7 (backslash at the end)"},
		{"ab:v", `key "ab" at position 1 is not of the form section.name`},
		{".ab:v", `key ".ab" at position 1 is not of the form section.name`},
		{"ab.:v", `key "ab." at position 1 is not of the form section.name`},
		{"a.b:c,xy:z", `key "xy" at position 7 is not of the form section.name`},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Parse(tc.in)
			if err == nil {
				t.Fatalf("no error, got %#v", got)
			}
			if err.Error() != tc.want {
				t.Errorf("error\n  %s\nwant\n  %s", err, tc.want)
			}
		})
	}
}
