// Package api defines the projectcalico.org/v3 resources this project reads and writes, in Calico's own JSON
// shape, with Calico's defaulting, validation and naming rules. It knows nothing about etcd.
package api

import (
	"encoding/json"
	"time"
)

// Group and version of every resource, as Calico writes them.
const (
	Group      = "projectcalico.org"
	APIVersion = Group + "/v3"
)

// Labels Calico forces onto every workload endpoint, and the service account label that Calico's
// Kubernetes CNI adds.
const (
	LabelNamespace      = "projectcalico.org/namespace"
	LabelOrchestrator   = "projectcalico.org/orchestrator"
	LabelServiceAccount = "projectcalico.org/serviceaccount"
)

// TypeMeta is the kind and apiVersion of a stored object.
type TypeMeta struct {
	Kind       string `json:"kind,omitempty"`
	APIVersion string `json:"apiVersion,omitempty"`
}

// ObjectMeta is the Kubernetes-style metadata Calico uses. ResourceVersion is the etcd mod revision of the
// stored value: it is filled on reads and never stored.
type ObjectMeta struct {
	Name              string            `json:"name,omitempty"`
	Namespace         string            `json:"namespace,omitempty"`
	UID               string            `json:"uid,omitempty"`
	CreationTimestamp *time.Time        `json:"creationTimestamp,omitempty"`
	ResourceVersion   string            `json:"resourceVersion,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	Annotations       map[string]string `json:"annotations,omitempty"`

	// Stored is the JSON this object was decoded from, kept so that an update writes back the fields
	// this version does not know (see Marshal).
	Stored json.RawMessage `json:"-"`
}

// Object is any v3 resource.
type Object interface {
	GetTypeMeta() *TypeMeta
	GetObjectMeta() *ObjectMeta
}

// GetTypeMeta returns the object's kind and version.
func (t *TypeMeta) GetTypeMeta() *TypeMeta { return t }

// GetObjectMeta returns the object's metadata.
func (m *ObjectMeta) GetObjectMeta() *ObjectMeta { return m }
