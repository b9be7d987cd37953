package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// Marshal encodes an object for storage: kind and apiVersion set, resourceVersion dropped, and every field
// of the JSON it was read from that this version does not know carried over, so that our updates never
// destroy what newer Calico tooling wrote.
func Marshal(o Object) ([]byte, error) {
	info := KindOf(o)
	tm := o.GetTypeMeta()
	tm.Kind, tm.APIVersion = info.Kind, APIVersion
	meta := o.GetObjectMeta()
	rv := meta.ResourceVersion
	meta.ResourceVersion = ""
	data, err := json.Marshal(o)
	meta.ResourceVersion = rv
	if err != nil || len(meta.Stored) == 0 {
		return data, err
	}
	var fresh, old map[string]any
	if err := decodeNumbers(data, &fresh); err != nil {
		return nil, err
	}
	if decodeNumbers(meta.Stored, &old) != nil {
		return data, nil // the stored value was not an object: nothing to preserve
	}
	keepUnknown(reflect.TypeOf(o).Elem(), fresh, old)
	delete(fresh["metadata"].(map[string]any), "resourceVersion")
	return json.Marshal(fresh)
}

// Unmarshal decodes a stored object leniently (unknown fields are kept in Stored for Marshal).
func Unmarshal(data []byte, o Object) error {
	if err := json.Unmarshal(data, o); err != nil {
		return err
	}
	o.GetObjectMeta().Stored = append(json.RawMessage(nil), data...)
	return nil
}

// UnmarshalStrict decodes user input, rejecting fields Calico does not know, as calicoctl does.
func UnmarshalStrict(data []byte, o Object) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(o); err != nil {
		return fmt.Errorf("%s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

func decodeNumbers(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return dec.Decode(v)
}

// keepUnknown copies into fresh every key of old that struct type t has no field for, recursing into
// nested structs (lists are replaced whole).
func keepUnknown(t reflect.Type, fresh, old map[string]any) {
	fields := jsonFields(t)
	for key, oldVal := range old {
		ft, known := fields[key]
		if !known {
			fresh[key] = oldVal
			continue
		}
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		oldMap, ok1 := oldVal.(map[string]any)
		newMap, ok2 := fresh[key].(map[string]any)
		if ft.Kind() == reflect.Struct && ok1 && ok2 {
			keepUnknown(ft, newMap, oldMap)
		}
	}
}

// jsonFields maps the JSON names of a struct's fields (inline embedded structs flattened) to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if f.Anonymous && name == "" {
			for k, v := range jsonFields(f.Type) {
				fields[k] = v
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = f.Type
	}
	return fields
}
