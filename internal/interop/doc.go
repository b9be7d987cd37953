// Package interop holds tests that feed this project's packages a datastore written by upstream Calico
// (calico/node, Felix, calicoctl, the CNI plugin on other hosts) and check that we read it without loss
// and behave next to it. It has no non-test code.
package interop
