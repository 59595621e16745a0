package kubeapi

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/component-helpers/apimachinery/lease"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/nodekit/nodekit/core"
)

// DefaultLeaseDurationSeconds is the kubelet's node lease duration: the
// node lifecycle controller marks a node whose lease is older than its
// grace period (40 s by default) not ready.
const DefaultLeaseDurationSeconds = 40

// leaseRenewFraction is the part of the lease duration after which the
// kubelet renews its lease.
const leaseRenewFraction = 0.25

// NodeLeaseConfig configures a NodeLease.
type NodeLeaseConfig struct {
	// Client of the apiserver. Required.
	Client kubernetes.Interface
	// NodeName names the lease and is its holder. Required.
	NodeName string
	// DurationSeconds is the lease's leaseDurationSeconds. Default
	// DefaultLeaseDurationSeconds.
	DurationSeconds int32
	// RenewInterval is how often the lease is renewed. Default a quarter
	// of the duration (10 s), as the kubelet.
	RenewInterval time.Duration
	// OnRepeatedFailure, if set, is called when a renewal failed twice in
	// a row; the kubelet closes its client's connections there, so that
	// the next try dials the apiserver again.
	OnRepeatedFailure func()
	// Clock stamps the lease's renewTime. The waits between renewals and
	// retries are client-go's own (Go timers, not Clock): test a NodeLease
	// under testing/synctest.
	Clock  clock.Clock
	Logger *zap.Logger
}

// NodeLease keeps the node's heartbeat lease as the kubelet does, with
// the lease controller of k8s.io/component-helpers: the Lease named after
// the node in the kube-node-lease namespace, held by the node, with
// leaseDurationSeconds DurationSeconds, its renewTime renewed every
// RenewInterval (jittered by 4 %), and an owner reference to the Node, so
// that the lease goes with the node. The lease is only created once the
// Node exists (the owner reference needs its UID). A failed renewal is
// retried at once a few times; a lease that cannot be read or created is
// retried with back-off from 200 ms to 7 s.
type NodeLease struct {
	cfg NodeLeaseConfig
	log *zap.Logger
}

// NewNodeLease returns a NodeLease for cfg.
func NewNodeLease(cfg NodeLeaseConfig) (*NodeLease, error) {
	var errs []error
	if cfg.Client == nil {
		errs = append(errs, errors.New("Client is required"))
	}
	if cfg.NodeName == "" {
		errs = append(errs, errors.New("NodeName is required"))
	}
	if cfg.DurationSeconds < 0 {
		errs = append(errs, fmt.Errorf("DurationSeconds %d must not be negative", cfg.DurationSeconds))
	}
	if cfg.RenewInterval < 0 {
		errs = append(errs, fmt.Errorf("RenewInterval %s must not be negative", cfg.RenewInterval))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("kubeapi: node lease: %w: %w", core.ErrInvalid, errors.Join(errs...))
	}
	if cfg.DurationSeconds == 0 {
		cfg.DurationSeconds = DefaultLeaseDurationSeconds
	}
	if cfg.RenewInterval == 0 {
		cfg.RenewInterval = time.Duration(float64(time.Duration(cfg.DurationSeconds)*time.Second) * leaseRenewFraction)
	}
	if cfg.RenewInterval >= time.Duration(cfg.DurationSeconds)*time.Second {
		return nil, fmt.Errorf("kubeapi: node lease: %w: RenewInterval %s must be shorter than the lease duration %ds",
			core.ErrInvalid, cfg.RenewInterval, cfg.DurationSeconds)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return &NodeLease{cfg: cfg, log: cfg.Logger}, nil
}

// RenewInterval is how often Run renews the lease.
func (l *NodeLease) RenewInterval() time.Duration { return l.cfg.RenewInterval }

// Run creates the lease if needed and renews it until ctx ends, then
// returns ctx's error. The lease is left in place: it expires by itself,
// and the node lifecycle controller takes that as the node being gone.
func (l *NodeLease) Run(ctx context.Context) error {
	ctx = klog.NewContext(ctx, zapr.NewLogger(l.log))
	c := lease.NewController(l.cfg.Clock, l.cfg.Client, l.cfg.NodeName, l.cfg.DurationSeconds, l.cfg.OnRepeatedFailure,
		l.cfg.RenewInterval, l.cfg.NodeName, v1.NamespaceNodeLease, l.setOwner(ctx))
	c.Run(ctx)
	return ctx.Err()
}

// setOwner makes the Node the owner of the lease, reading the Node's UID
// until it has it.
func (l *NodeLease) setOwner(ctx context.Context) lease.ProcessLeaseFunc {
	return func(ls *coordinationv1.Lease) error {
		if len(ls.OwnerReferences) > 0 {
			return nil
		}
		node, err := l.cfg.Client.CoreV1().Nodes().Get(ctx, l.cfg.NodeName, metav1.GetOptions{})
		if err != nil {
			l.log.Info("node not found yet, the owner of its lease", zap.String("node", l.cfg.NodeName), zap.Error(err))
			return fmt.Errorf("node %s, owner of its lease: %w", l.cfg.NodeName, err)
		}
		ls.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: l.cfg.NodeName, UID: node.UID}}
		return nil
	}
}
