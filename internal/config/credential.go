package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"gitsync/internal/secret"
)

// credentialJSON is the wire form of one --credential entry. Credential
// itself cannot be decoded directly because its password is a
// secret.Secret, which deliberately has no JSON decoding.
type credentialJSON struct {
	URL          string `json:"url"`
	Username     string `json:"username"`
	Password     string `json:"password"`
	PasswordFile string `json:"password-file"`
}

// parseCredentials reads one --credential value: a JSON object or a JSON
// list of objects. Errors never quote the input, which may hold passwords.
func parseCredentials(s string) ([]Credential, error) {
	s = strings.TrimSpace(s)
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	var list []credentialJSON
	var err error
	if strings.HasPrefix(s, "[") {
		err = dec.Decode(&list)
	} else {
		var one credentialJSON
		err = dec.Decode(&one)
		list = []credentialJSON{one}
	}
	if err != nil {
		return nil, fmt.Errorf("not a JSON object or list of objects: %v", jsonProblem(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("unexpected data after the JSON value")
	}
	if len(list) == 0 {
		return nil, errors.New("empty list")
	}

	out := make([]Credential, 0, len(list))
	var errs []error
	for i, cj := range list {
		var problem string
		switch {
		case cj.URL == "":
			problem = `"url" is required`
		case cj.Username == "":
			problem = `"username" is required`
		case cj.Password == "" && cj.PasswordFile == "":
			problem = `one of "password" and "password-file" is required`
		case cj.Password != "" && cj.PasswordFile != "":
			problem = `"password" and "password-file" cannot both be set`
		}
		if problem != "" {
			if len(list) > 1 {
				problem = fmt.Sprintf("entry %d: %s", i+1, problem)
			}
			errs = append(errs, errors.New(problem))
			continue
		}
		out = append(out, Credential{
			URL:          cj.URL,
			Username:     cj.Username,
			Password:     secret.New(cj.Password),
			PasswordFile: cj.PasswordFile,
		})
	}
	return out, errors.Join(errs...)
}

// jsonProblem describes a decoding error without any of the input text.
func jsonProblem(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("syntax error at byte %d", syntax.Offset)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("field %q must be a %s", typ.Field, typ.Type)
		}
		return fmt.Sprintf("got a JSON %s", typ.Value)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected end of input"
	}
	// Unknown fields: encoding/json reports the field name, never a value.
	return strings.TrimPrefix(err.Error(), "json: ")
}
