// Package config fills configuration structs from environment variables.
//
// A field tagged `env:"NAME"` takes the value of the variable NAME; `default:"..."`
// gives the value used when the variable is unset and the field is still zero.
// The option `secret` (`env:"TOKEN,secret"`) hides the value when the
// configuration is logged; `url` hides only the password of a URL.
package config

import (
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Lookup returns the value of a variable and whether it is set.
type Lookup func(name string) (string, bool)

// Env looks variables up in the process environment. With a prefix, PREFIX_NAME
// is tried before NAME, so that one environment can configure several services.
func Env(prefix string) Lookup {
	return func(name string) (string, bool) {
		if prefix != "" {
			if v, ok := os.LookupEnv(strings.ToUpper(prefix) + "_" + name); ok {
				return v, true
			}
		}
		return os.LookupEnv(name)
	}
}

// Map looks variables up in a map; tests use it.
func Map(m map[string]string) Lookup {
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

// Load fills the tagged fields of the struct that dst points to.
func Load(lookup Lookup, dst any) error {
	v := reflect.ValueOf(dst)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("config: Load needs a pointer to a struct, got %T", dst)
	}
	return load(lookup, v.Elem())
}

func load(lookup Lookup, v reflect.Value) error {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		fv := v.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			if err := load(lookup, fv); err != nil {
				return err
			}
			continue
		}
		name, _ := tag(f)
		if name == "" {
			continue
		}
		raw, ok := lookup(name)
		if !ok {
			def, has := f.Tag.Lookup("default")
			if !has || !fv.IsZero() {
				continue
			}
			raw = def
		}
		if err := set(fv, raw); err != nil {
			return fmt.Errorf("config: %s=%q: %w", name, raw, err)
		}
	}
	return nil
}

func tag(f reflect.StructField) (name string, opts []string) {
	parts := strings.Split(f.Tag.Get("env"), ",")
	return parts[0], parts[1:]
}

func set(fv reflect.Value, raw string) error {
	switch fv.Interface().(type) {
	case time.Duration:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("want a duration such as 500ms or 2s: %w", err)
		}
		fv.SetInt(int64(d))
		return nil
	}
	switch fv.Kind() {
	case reflect.String:
		fv.SetString(raw)
	case reflect.Int, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return fmt.Errorf("want a whole number: %w", err)
		}
		fv.SetInt(n)
	case reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return fmt.Errorf("want true or false: %w", err)
		}
		fv.SetBool(b)
	case reflect.Float64:
		x, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return fmt.Errorf("want a number: %w", err)
		}
		fv.SetFloat(x)
	default:
		return fmt.Errorf("unsupported field kind %s", fv.Kind())
	}
	return nil
}

// Attrs describes the configuration for a log line, with secrets hidden.
func Attrs(src any) []any {
	var out []any
	collect(reflect.Indirect(reflect.ValueOf(src)), &out)
	return out
}

func collect(v reflect.Value, out *[]any) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			collect(v.Field(i), out)
			continue
		}
		name, opts := tag(f)
		if name == "" {
			continue
		}
		val := fmt.Sprint(v.Field(i).Interface())
		for _, o := range opts {
			switch o {
			case "secret":
				if val != "" {
					val = "***"
				}
			case "url":
				val = maskURL(val)
			}
		}
		*out = append(*out, slog.String(name, val))
	}
}

func maskURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if pw, has := u.User.Password(); has && pw != "" {
		return strings.Replace(raw, ":"+pw+"@", ":***@", 1)
	}
	return raw
}
