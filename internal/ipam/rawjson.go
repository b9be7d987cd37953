package ipam

import (
	"bytes"
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
)

// extraFields holds the members of a stored JSON object that our struct has no field for. Writing them back
// keeps what older or newer Calico versions put there (strictAffinity, releasedAt, ...), so a block we
// rewrite loses nothing another tool relies on.
type extraFields map[string]json.RawMessage

// decodeKeeping decodes data into v (a pointer to a struct) and returns the members v does not know.
func decodeKeeping(data []byte, v any) (extraFields, error) {
	if err := json.Unmarshal(data, v); err != nil {
		return nil, err
	}
	return unknownMembers(data, reflect.TypeOf(v).Elem())
}

// unknownMembers returns the members of a JSON object that struct type t has no field for.
func unknownMembers(data []byte, t reflect.Type) (extraFields, error) {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil {
		return nil, err
	}
	known := knownFields(t)
	for k := range all {
		if known[k] {
			delete(all, k)
		}
	}
	if len(all) == 0 {
		return nil, nil
	}
	return extraFields(all), nil
}

// encodeKeeping encodes v (a struct) and appends the extra members, in a stable order.
func encodeKeeping(v any, extra extraFields) ([]byte, error) {
	data, err := json.Marshal(v)
	if err != nil || len(extra) == 0 {
		return data, err
	}
	var buf bytes.Buffer
	buf.Write(data[:len(data)-1]) // drop the closing brace
	sep := len(data) > 2          // "{}" has no member to follow
	for _, k := range slices.Sorted(maps.Keys(extra)) {
		if sep {
			buf.WriteByte(',')
		}
		sep = true
		name, _ := json.Marshal(k)
		buf.Write(name)
		buf.WriteByte(':')
		buf.Write(extra[k])
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

func (e extraFields) equal(o extraFields) bool {
	if len(e) != len(o) {
		return false
	}
	for k, v := range e {
		if w, ok := o[k]; !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}

var knownFieldCache sync.Map // reflect.Type → map[string]bool

// knownFields lists the JSON member names of a struct type's exported fields.
func knownFields(t reflect.Type) map[string]bool {
	if v, ok := knownFieldCache.Load(t); ok {
		return v.(map[string]bool)
	}
	names := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		names[name] = true
	}
	knownFieldCache.Store(t, names)
	return names
}
