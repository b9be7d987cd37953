package calicoctl

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/projectcalico/calico-libnetwork/internal/api"
)

// readResources loads the resources in a YAML or JSON file ("-" reads stdin). A file holds one or more
// documents separated by "---" lines; each document is a single resource, a list of resources, or a
// <Kind>List with items. Decoding is strict: unknown fields are errors, as in upstream calicoctl.
func readResources(path string, stdin io.Reader) ([]api.Object, error) {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(stdin)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	source := path
	if path == "-" {
		source = "stdin"
	}
	var objs []api.Object
	for i, doc := range splitDocuments(data) {
		found, err := decodeDocument(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", source, i+1, err)
		}
		objs = append(objs, found...)
	}
	return objs, nil
}

// splitDocuments cuts a YAML stream at its "---" separator lines.
func splitDocuments(data []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), len(data)+1)
	for sc.Scan() {
		line := sc.Text()
		if trimmed := strings.TrimRight(line, " \t\r"); trimmed == "---" || strings.HasPrefix(trimmed, "--- ") {
			docs = append(docs, bytes.Clone(cur.Bytes()))
			cur.Reset()
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	return append(docs, cur.Bytes())
}

// typeHeader is the part of a document that says what it is.
type typeHeader struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Items      json.RawMessage `json:"items"`
}

func decodeDocument(doc []byte) ([]api.Object, error) {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, err
	}
	js = bytes.TrimSpace(js)
	switch {
	case bytes.Equal(js, []byte("null")):
		return nil, nil // empty document (or only comments)
	case bytes.HasPrefix(js, []byte("[")):
		var items []json.RawMessage
		if err := json.Unmarshal(js, &items); err != nil {
			return nil, err
		}
		return decodeItems(items)
	case !bytes.HasPrefix(js, []byte("{")):
		return nil, errors.New("expected a resource (a mapping with apiVersion, kind, metadata and spec)")
	}
	var hdr typeHeader
	if err := json.Unmarshal(js, &hdr); err != nil {
		return nil, err
	}
	if base, isList := strings.CutSuffix(hdr.Kind, "List"); isList && base != "" {
		if _, err := api.LookupKind(base); err == nil {
			return decodeList(js, hdr)
		}
	}
	obj, err := decodeResource(js)
	if err != nil {
		return nil, err
	}
	return []api.Object{obj}, nil
}

func decodeItems(items []json.RawMessage) ([]api.Object, error) {
	objs := make([]api.Object, 0, len(items))
	for i, item := range items {
		obj, err := decodeResource(item)
		if err != nil {
			return nil, fmt.Errorf("item %d: %w", i+1, err)
		}
		objs = append(objs, obj)
	}
	return objs, nil
}

// decodeList decodes a <Kind>List: apiVersion, kind, metadata and items, nothing else.
func decodeList(js []byte, hdr typeHeader) ([]api.Object, error) {
	if err := checkAPIVersion(hdr.APIVersion, hdr.Kind); err != nil {
		return nil, err
	}
	var list struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Metadata   map[string]any    `json:"metadata"`
		Items      []json.RawMessage `json:"items"`
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&list); err != nil {
		return nil, fmt.Errorf("%s: %s", hdr.Kind, strings.TrimPrefix(err.Error(), "json: "))
	}
	return decodeItems(list.Items)
}

func checkAPIVersion(v, kind string) error {
	switch v {
	case api.APIVersion:
		return nil
	case "":
		return fmt.Errorf("%s: apiVersion is missing (want %s)", kindOrResource(kind), api.APIVersion)
	}
	return fmt.Errorf("%s: apiVersion %q is not supported (want %s)", kindOrResource(kind), v, api.APIVersion)
}

func kindOrResource(kind string) string {
	if kind == "" {
		return "resource"
	}
	return kind
}

// decodeResource strictly decodes one resource from its JSON form.
func decodeResource(js []byte) (api.Object, error) {
	var hdr struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(js, &hdr); err != nil {
		return nil, fmt.Errorf("expected a resource (a mapping with apiVersion, kind, metadata and spec): %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if hdr.Kind == "" {
		return nil, errors.New("resource has no kind")
	}
	info, err := api.LookupKind(hdr.Kind)
	if err != nil {
		return nil, fmt.Errorf("resource type %q is not supported (known: %s)", hdr.Kind, strings.Join(api.KindNames(), ", "))
	}
	if info.Kind != hdr.Kind {
		return nil, fmt.Errorf("resource type %q is not supported: did you mean %q?", hdr.Kind, info.Kind)
	}
	if err := checkAPIVersion(hdr.APIVersion, hdr.Kind); err != nil {
		return nil, err
	}
	obj := info.New()
	if err := api.UnmarshalStrict(js, obj); err != nil {
		if path := unknownField(reflect.TypeOf(obj).Elem(), js); path != "" {
			err = fmt.Errorf("unknown field %q", path)
		}
		return nil, fmt.Errorf("%s %q: %w", info.Kind, hdr.Metadata.Name, err)
	}
	return obj, nil
}

// unknownField returns the dotted path of the first field (in sorted order) in js that type t has no
// field for, or "" if there is none; it is used to name the field in strict decoding errors.
func unknownField(t reflect.Type, js []byte) string {
	var v any
	if json.Unmarshal(js, &v) != nil {
		return ""
	}
	return findUnknown(t, v, "")
}

var (
	rawMessageType  = reflect.TypeOf(json.RawMessage(nil))
	unmarshalerType = reflect.TypeOf((*json.Unmarshaler)(nil)).Elem()
)

func findUnknown(t reflect.Type, v any, prefix string) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == rawMessageType || reflect.PointerTo(t).Implements(unmarshalerType) {
		return ""
	}
	join := func(key string) string {
		if prefix == "" {
			return key
		}
		return prefix + "." + key
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		fields := structFields(t)
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ft, known := fields[k]
			if !known {
				// encoding/json matches field names case-insensitively.
				for name, typ := range fields {
					if strings.EqualFold(name, k) {
						ft, known = typ, true
						break
					}
				}
			}
			if !known {
				return join(k)
			}
			if p := findUnknown(ft, m[k], join(k)); p != "" {
				return p
			}
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if p := findUnknown(t.Elem(), m[k], join(k)); p != "" {
				return p
			}
		}
	case reflect.Slice, reflect.Array:
		items, ok := v.([]any)
		if !ok {
			return ""
		}
		for i, item := range items {
			if p := findUnknown(t.Elem(), item, fmt.Sprintf("%s[%d]", prefix, i)); p != "" {
				return p
			}
		}
	}
	return ""
}

// structFields maps the JSON names of a struct's fields to their types, flattening embedded structs.
func structFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if f.Anonymous && name == "" {
			for k, v := range structFields(f.Type) {
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
