package datastore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/api"
)

// ResourcePrefix is the root of every v3 resource key.
const ResourcePrefix = "/calico/resources/v3/projectcalico.org/"

// ResourceKey is where Calico stores a resource: <prefix><plural>/[<namespace>/]<name>.
func ResourceKey(kind api.KindInfo, namespace, name string) string {
	if kind.Namespaced {
		return ResourcePrefix + kind.Plural + "/" + namespace + "/" + name
	}
	return ResourcePrefix + kind.Plural + "/" + name
}

// KindPrefix is the key prefix listing every resource of a kind (in one namespace if given).
func KindPrefix(kind api.KindInfo, namespace string) string {
	if kind.Namespaced && namespace != "" {
		return ResourcePrefix + kind.Plural + "/" + namespace + "/"
	}
	return ResourcePrefix + kind.Plural + "/"
}

func objectKey(o api.Object) string {
	m := o.GetObjectMeta()
	return ResourceKey(api.KindOf(o), m.Namespace, m.Name)
}

// Decode turns a stored value into a typed object of the given kind, defaulted, with its resourceVersion set.
func Decode(kind api.KindInfo, kv KV) (api.Object, error) {
	o := kind.New()
	if err := api.Unmarshal(kv.Value, o); err != nil {
		return nil, &KeyError{Key: kv.Key, Err: fmt.Errorf("stored %s is not valid JSON: %w", kind.Kind, err)}
	}
	// Values written by other tools may omit fields Calico defaults; readers see them as Calico would.
	api.Default(o)
	o.GetObjectMeta().ResourceVersion = strconv.FormatInt(kv.Revision, 10)
	return o, nil
}

// GetResource reads one resource into a new object of the given kind.
func (s *Store) GetResource(ctx context.Context, kind api.KindInfo, namespace, name string) (api.Object, error) {
	kv, err := s.Get(ctx, ResourceKey(kind, namespace, name))
	if err != nil {
		return nil, err
	}
	return Decode(kind, kv)
}

// ListResources lists a kind (all namespaces when namespace is empty). Values that fail to decode are
// skipped and reported in the returned error only if nothing else could be read.
func (s *Store) ListResources(ctx context.Context, kind api.KindInfo, namespace string) ([]api.Object, int64, error) {
	return s.listResources(ctx, kind, KindPrefix(kind, namespace))
}

// listResources lists the resources of a kind whose keys begin with prefix, as ListResources.
func (s *Store) listResources(ctx context.Context, kind api.KindInfo, prefix string) ([]api.Object, int64, error) {
	kvs, rev, err := s.List(ctx, prefix)
	if err != nil {
		return nil, 0, err
	}
	out := make([]api.Object, 0, len(kvs))
	var decodeErr error
	for _, kv := range kvs {
		o, err := Decode(kind, kv)
		if err != nil {
			decodeErr = err
			continue
		}
		out = append(out, o)
	}
	if len(out) == 0 && decodeErr != nil {
		return nil, rev, decodeErr
	}
	return out, rev, nil
}

// Get reads a resource of a concrete type: datastore.Get[*api.IPPool](ctx, s, "", "pool1").
func Get[T api.Object](ctx context.Context, s *Store, namespace, name string) (T, error) {
	var zero T
	o, err := s.GetResource(ctx, api.KindOf(zero), namespace, name)
	if err != nil {
		return zero, err
	}
	return o.(T), nil
}

// List reads every resource of a concrete type (in one namespace if given).
func List[T api.Object](ctx context.Context, s *Store, namespace string) ([]T, error) {
	var zero T
	objs, _, err := s.ListResources(ctx, api.KindOf(zero), namespace)
	out := make([]T, len(objs))
	for i, o := range objs {
		out[i] = o.(T)
	}
	return out, err
}

// LocalEndpoints lists the workload endpoints of node's Docker containers: the libnetwork ones on that node.
// Only keys with the node's name prefix are read (see api.EndpointNamePrefix), so its cost follows the
// node's endpoints, not the cluster's.
func LocalEndpoints(ctx context.Context, s *Store, node string) ([]*api.WorkloadEndpoint, error) {
	kind := api.KindOf(&api.WorkloadEndpoint{})
	objs, _, err := s.listResources(ctx, kind, KindPrefix(kind, api.NamespaceLibnetwork)+api.EndpointNamePrefix(node))
	if err != nil {
		return nil, err
	}
	var local []*api.WorkloadEndpoint
	for _, o := range objs {
		if w := o.(*api.WorkloadEndpoint); w.Spec.Node == node && w.Spec.Orchestrator == api.OrchestratorLibnetwork {
			local = append(local, w)
		}
	}
	return local, nil
}

func prepare(o api.Object) ([]byte, error) {
	api.Default(o)
	if err := api.Validate(o); err != nil {
		return nil, err
	}
	return api.Marshal(o)
}

// Create stores a new resource after defaulting and validating it; it fills uid, creationTimestamp and
// resourceVersion. ErrExists if the name is taken; ErrConflict if one of the further conditions (such as
// Unchanged) fails.
func (s *Store) Create(ctx context.Context, o api.Object, conds ...Op) error {
	op, err := CreateOp(o)
	if err != nil {
		return err
	}
	rev, err := s.Txn(ctx, append([]Op{op}, conds...)...)
	if err != nil {
		return resourceError(o, err)
	}
	m := o.GetObjectMeta()
	m.ResourceVersion = strconv.FormatInt(rev, 10)
	m.Stored = op.Value
	return nil
}

// CreateOp is Create's write as a transaction operation, for creating many resources in one Txn: it fills
// uid and creationTimestamp, defaults and validates o, and leaves its resourceVersion unset.
func CreateOp(o api.Object) (Op, error) {
	m := o.GetObjectMeta()
	if m.ResourceVersion != "" {
		return Op{}, fmt.Errorf("%s %q: metadata.resourceVersion must not be set on create", api.KindOf(o).Kind, m.Name)
	}
	if m.UID == "" {
		m.UID = newUID()
	}
	if m.CreationTimestamp == nil {
		now := time.Now().UTC().Truncate(time.Second)
		m.CreationTimestamp = &now
	}
	data, err := prepare(o)
	if err != nil {
		return Op{}, err
	}
	return Put(objectKey(o), data, 0), nil
}

// Update replaces a resource if it is unchanged since it was read (its resourceVersion); ErrConflict otherwise.
func (s *Store) Update(ctx context.Context, o api.Object) error {
	m := o.GetObjectMeta()
	rev, err := strconv.ParseInt(m.ResourceVersion, 10, 64)
	if err != nil || rev <= 0 {
		return fmt.Errorf("%s %q: update needs the resourceVersion it was read at", api.KindOf(o).Kind, m.Name)
	}
	data, err := prepare(o)
	if err != nil {
		return err
	}
	newRev, err := s.Txn(ctx, Put(objectKey(o), data, rev))
	if err != nil {
		return resourceError(o, err)
	}
	m.ResourceVersion = strconv.FormatInt(newRev, 10)
	m.Stored = data
	return nil
}

// Apply creates the resource, or updates the stored one keeping its uid and creationTimestamp (and the
// fields this version does not know), retrying a few times on concurrent changes.
func (s *Store) Apply(ctx context.Context, o api.Object) error {
	m := o.GetObjectMeta()
	for attempt := 0; ; attempt++ {
		m.ResourceVersion = ""
		err := s.Create(ctx, o)
		if !errors.Is(err, ErrExists) {
			return err
		}
		current, err := s.GetResource(ctx, api.KindOf(o), m.Namespace, m.Name)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		cm := current.GetObjectMeta()
		m.UID, m.CreationTimestamp, m.ResourceVersion, m.Stored = cm.UID, cm.CreationTimestamp, cm.ResourceVersion, cm.Stored
		err = s.Update(ctx, o)
		if !errors.Is(err, ErrConflict) || attempt >= 5 {
			return err
		}
	}
}

// DeleteResource removes a resource, at revision rev if it is non-empty.
func (s *Store) DeleteResource(ctx context.Context, kind api.KindInfo, namespace, name, rev string) error {
	var r int64
	if rev != "" {
		var err error
		if r, err = strconv.ParseInt(rev, 10, 64); err != nil {
			return fmt.Errorf("%s %q: invalid resourceVersion %q", kind.Kind, name, rev)
		}
	}
	err := s.DeleteKey(ctx, ResourceKey(kind, namespace, name), r)
	if err != nil {
		return &resourceErr{kind: kind.Kind, name: name, err: err}
	}
	return nil
}

// resourceErr phrases datastore errors in terms of the resource, keeping errors.Is working.
type resourceErr struct {
	kind, name string
	err        error
}

func (e *resourceErr) Error() string {
	var ke *KeyError
	msg := e.err.Error()
	if errors.As(e.err, &ke) {
		msg = ke.Err.Error()
	}
	return fmt.Sprintf("%s %q: %s", e.kind, e.name, msg)
}
func (e *resourceErr) Unwrap() error { return e.err }

func resourceError(o api.Object, err error) error {
	return &resourceErr{kind: api.KindOf(o).Kind, name: o.GetObjectMeta().Name, err: err}
}

// newUID returns a random RFC 4122 version 4 UUID, as Calico fills metadata.uid.
func newUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := fmt.Sprintf("%x", b)
	return strings.Join([]string{h[0:8], h[8:12], h[12:16], h[16:20], h[20:32]}, "-")
}
