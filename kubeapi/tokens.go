package kubeapi

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"

	"github.com/nodekit/nodekit/core"
)

// TokensConfig configures Tokens.
type TokensConfig struct {
	// Client of the apiserver. Required.
	Client kubernetes.Interface
	Clock  clock.PassiveClock
}

// Tokens answers the service account tokens of projected volumes
// (volumemgr's TokenGetter) with the TokenRequest API, as the kubelet's
// token manager: a token is requested for the pod it is bound to, and
// reused until 80 % of its lifetime (at most 24 hours) has passed, so that
// writing a volume again does not ask the apiserver each time.
type Tokens struct {
	cfg TokensConfig

	mu    sync.Mutex
	cache map[string]*authenticationv1.TokenRequest
}

// NewTokens returns Tokens for cfg.
func NewTokens(cfg TokensConfig) (*Tokens, error) {
	if cfg.Client == nil {
		return nil, fmt.Errorf("kubeapi: tokens: Client is required: %w", core.ErrInvalid)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	return &Tokens{cfg: cfg, cache: map[string]*authenticationv1.TokenRequest{}}, nil
}

// GetServiceAccountToken returns a token of service account
// namespace/name as tr asks (audiences, expiration, bound object).
func (t *Tokens) GetServiceAccountToken(ctx context.Context, namespace, name string, tr *authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error) {
	key := tokenKey(namespace, name, tr)
	now := t.cfg.Clock.Now()
	t.mu.Lock()
	if cached := t.cache[key]; cached != nil && !t.stale(cached, now) {
		t.mu.Unlock()
		return cached.DeepCopy(), nil
	}
	t.mu.Unlock()
	got, err := t.cfg.Client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, tr, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("token of service account %s/%s: %w", namespace, name, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, v := range t.cache {
		if !v.Status.ExpirationTimestamp.After(now) {
			delete(t.cache, k)
		}
	}
	t.cache[key] = got.DeepCopy()
	return got, nil
}

// stale: 80 % of the token's lifetime passed, or 24 hours, as the
// kubelet's token manager decides to refresh.
func (t *Tokens) stale(tr *authenticationv1.TokenRequest, now time.Time) bool {
	exp := tr.Status.ExpirationTimestamp.Time
	if tr.Spec.ExpirationSeconds == nil {
		return !now.Before(exp)
	}
	ttl := time.Duration(*tr.Spec.ExpirationSeconds) * time.Second
	issued := exp.Add(-ttl)
	return now.After(issued.Add(min(ttl*8/10, 24*time.Hour)))
}

func tokenKey(namespace, name string, tr *authenticationv1.TokenRequest) string {
	exp := int64(0)
	if tr.Spec.ExpirationSeconds != nil {
		exp = *tr.Spec.ExpirationSeconds
	}
	bound := ""
	if r := tr.Spec.BoundObjectRef; r != nil {
		bound = r.Kind + "/" + r.Name + "/" + string(r.UID)
	}
	return fmt.Sprintf("%s/%s|%s|%d|%s", namespace, name, strings.Join(tr.Spec.Audiences, ","), exp, bound)
}
