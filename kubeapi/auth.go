package kubeapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"
	"k8s.io/apimachinery/pkg/util/wait"
	apiserverconfig "k8s.io/apiserver/pkg/apis/apiserver"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/authenticatorfactory"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	"k8s.io/client-go/kubernetes"
	kubeletconfig "k8s.io/kubelet/config/v1beta1"

	"github.com/nodekit/nodekit/core"
)

// The defaults of the kubelet's configuration for its server's
// authentication and authorization.
const (
	// DefaultAuthnCacheTTL is how long a TokenReview's answer is kept.
	DefaultAuthnCacheTTL = 2 * time.Minute
	// DefaultAuthzAllowTTL is how long a SubjectAccessReview that allowed
	// is kept.
	DefaultAuthzAllowTTL = 5 * time.Minute
	// DefaultAuthzDenyTTL is how long a SubjectAccessReview that did not
	// allow is kept.
	DefaultAuthzDenyTTL = 30 * time.Second
)

// ServerAuthConfig configures a ServerAuth. Its two settings are the
// kubelet configuration's authentication and authorization, read with
// the kubelet's defaults: a zero Authentication takes bearer tokens
// (Webhook.Enabled nil means true) and no anonymous requests, a zero
// Authorization asks the apiserver (Mode "" means Webhook); zero cache
// TTLs mean the defaults above.
type ServerAuthConfig struct {
	// Authentication: client certificates signed by an authority of
	// X509.ClientCAFile, bearer tokens checked with a TokenReview when
	// Webhook.Enabled, and, when Anonymous.Enabled, any request that
	// offers neither as the user system:anonymous in the group
	// system:unauthenticated. At least one must be on.
	Authentication kubeletconfig.KubeletAuthentication
	// Authorization: Webhook asks the apiserver with a
	// SubjectAccessReview; AlwaysAllow allows every authenticated
	// request.
	Authorization kubeletconfig.KubeletAuthorization
	// Client of the apiserver, for TokenReviews and SubjectAccessReviews.
	// Required when either webhook is on.
	Client kubernetes.Interface
	// NodeName is the name of the Node the server belongs to, the object
	// every request is authorized against. Required.
	NodeName string
	Logger   *zap.Logger
}

// ServerAuth authenticates and authorizes the requests to a kubelet's
// server as the kubelet does. Wrap puts it in front of a handler: every
// request is authenticated, by its client certificate, then its bearer
// token, then (if enabled) as anonymous; one that is not gets 401. The
// request is then authorized as access to a subresource of the Node
// (ServerRequestAttributes); one that is not allowed gets 403 naming the
// user, the verb, the resource and the subresources tried. No path is
// exempt.
//
// It is safe for concurrent use. Run keeps the client CA bundle current;
// without it, the bundle read by NewServerAuth is used.
type ServerAuth struct {
	cfg   ServerAuthConfig
	log   *zap.Logger
	authn authenticator.Request
	authz authorizer.UnconditionalAuthorizer
	ca    *dynamiccertificates.DynamicFileCAContent // nil without a ClientCAFile
}

// NewServerAuth returns a ServerAuth for cfg. It reads the client CA
// bundle, and fails if it cannot. Errors of configuration wrap
// core.ErrInvalid and name the field.
func NewServerAuth(cfg ServerAuthConfig) (*ServerAuth, error) {
	authn := &cfg.Authentication
	authz := &cfg.Authorization
	if authn.Webhook.Enabled == nil {
		authn.Webhook.Enabled = new(true)
	}
	if authn.Anonymous.Enabled == nil {
		authn.Anonymous.Enabled = new(false)
	}
	if authn.Webhook.CacheTTL.Duration == 0 {
		authn.Webhook.CacheTTL.Duration = DefaultAuthnCacheTTL
	}
	if authz.Mode == "" {
		authz.Mode = kubeletconfig.KubeletAuthorizationModeWebhook
	}
	if authz.Webhook.CacheAuthorizedTTL.Duration == 0 {
		authz.Webhook.CacheAuthorizedTTL.Duration = DefaultAuthzAllowTTL
	}
	if authz.Webhook.CacheUnauthorizedTTL.Duration == 0 {
		authz.Webhook.CacheUnauthorizedTTL.Duration = DefaultAuthzDenyTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}

	var errs []error
	if cfg.NodeName == "" {
		errs = append(errs, errors.New("NodeName is required"))
	}
	if *authn.Webhook.Enabled && cfg.Client == nil {
		errs = append(errs, errors.New("Authentication.Webhook.Enabled needs a Client for TokenReviews"))
	}
	if authn.X509.ClientCAFile == "" && !*authn.Webhook.Enabled && !*authn.Anonymous.Enabled {
		errs = append(errs, errors.New("Authentication: no method is on (set X509.ClientCAFile, Webhook.Enabled or Anonymous.Enabled)"))
	}
	for _, d := range []struct {
		field string
		value time.Duration
	}{
		{"Authentication.Webhook.CacheTTL", authn.Webhook.CacheTTL.Duration},
		{"Authorization.Webhook.CacheAuthorizedTTL", authz.Webhook.CacheAuthorizedTTL.Duration},
		{"Authorization.Webhook.CacheUnauthorizedTTL", authz.Webhook.CacheUnauthorizedTTL.Duration},
	} {
		if d.value < 0 {
			errs = append(errs, fmt.Errorf("%s %s must not be negative", d.field, d.value))
		}
	}
	switch authz.Mode {
	case kubeletconfig.KubeletAuthorizationModeAlwaysAllow:
	case kubeletconfig.KubeletAuthorizationModeWebhook:
		if cfg.Client == nil {
			errs = append(errs, errors.New("Authorization.Mode Webhook needs a Client for SubjectAccessReviews"))
		}
	default:
		errs = append(errs, fmt.Errorf("Authorization.Mode %q is neither %s nor %s", authz.Mode,
			kubeletconfig.KubeletAuthorizationModeWebhook, kubeletconfig.KubeletAuthorizationModeAlwaysAllow))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("kubeapi: server auth: %w: %w", core.ErrInvalid, errors.Join(errs...))
	}

	a := &ServerAuth{cfg: cfg, log: cfg.Logger}
	factory := authenticatorfactory.DelegatingAuthenticatorConfig{
		Anonymous: &apiserverconfig.AnonymousAuthConfig{Enabled: *authn.Anonymous.Enabled},
		CacheTTL:  authn.Webhook.CacheTTL.Duration,
	}
	if authn.X509.ClientCAFile != "" {
		ca, err := dynamiccertificates.NewDynamicCAContentFromFile("client-ca-bundle", authn.X509.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("kubeapi: server auth: Authentication.X509.ClientCAFile: %w", err)
		}
		a.ca = ca
		factory.ClientCertificateCAContentProvider = ca
	}
	if *authn.Webhook.Enabled {
		factory.TokenAccessReviewClient = cfg.Client.AuthenticationV1()
		factory.WebhookRetryBackoff = webhookBackoff()
	}
	var err error
	if a.authn, _, err = factory.New(); err != nil {
		return nil, fmt.Errorf("kubeapi: server auth: authentication: %w", err)
	}
	switch authz.Mode {
	case kubeletconfig.KubeletAuthorizationModeAlwaysAllow:
		a.authz = authorizerfactory.NewAlwaysAllowAuthorizer()
	case kubeletconfig.KubeletAuthorizationModeWebhook:
		a.authz, err = authorizerfactory.DelegatingAuthorizerConfig{
			SubjectAccessReviewClient: cfg.Client.AuthorizationV1(),
			AllowCacheTTL:             authz.Webhook.CacheAuthorizedTTL.Duration,
			DenyCacheTTL:              authz.Webhook.CacheUnauthorizedTTL.Duration,
			WebhookRetryBackoff:       webhookBackoff(),
		}.New()
		if err != nil {
			return nil, fmt.Errorf("kubeapi: server auth: authorization: %w", err)
		}
	}
	return a, nil
}

// webhookBackoff is how a TokenReview or SubjectAccessReview that failed
// is retried: 5 tries, 0.5s apart growing by half each time, as every
// component that delegates to the apiserver.
func webhookBackoff() *wait.Backoff {
	return &wait.Backoff{Duration: 500 * time.Millisecond, Factor: 1.5, Jitter: 0.2, Steps: 5}
}

// Run keeps the client CA bundle current: it reads
// Authentication.X509.ClientCAFile again whenever the file changes (and
// once a minute), until ctx ends; a bundle that cannot be read or parsed
// is ignored and the last good one kept. Without a ClientCAFile it only
// waits for ctx. It returns ctx.Err(). Call it once.
func (a *ServerAuth) Run(ctx context.Context) error {
	if a.ca != nil {
		a.ca.Run(ctx, 1)
	}
	<-ctx.Done()
	return ctx.Err()
}

// Wrap returns a handler that serves only the requests the ServerAuth
// authenticates and authorizes, with next, and answers the others as the
// kubelet does:
//
//   - 401 "Unauthorized" when no method authenticates the request, or
//     one fails (a client certificate of another authority, a token the
//     TokenReview could not check);
//   - 403 "Forbidden (user=U, verb=V, resource=nodes, subresource(s)=[S...])"
//     when the authorizer allows none of the request's attributes;
//   - 500 "Authorization error (user=U, verb=V, resource=nodes, subresource=S)"
//     when the authorizer fails (the apiserver cannot be reached).
//
// next finds the user in the request's context (UserFrom); a bearer
// token that authenticated is removed from the request. Requests are
// authorized by their URL.Path as it came, so next must serve that path
// and no other (http.ServeMux does: it redirects a path that is not
// clean instead of serving it).
func (a *ServerAuth) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, ok, err := a.authn.AuthenticateRequest(r)
		if err != nil {
			a.log.Info("request not authenticated", zap.String("path", r.URL.Path), zap.String("remote", r.RemoteAddr), zap.Error(err))
			writeText(w, http.StatusUnauthorized, "Unauthorized")
			return
		}
		if !ok {
			writeText(w, http.StatusUnauthorized, "Unauthorized")
			return
		}
		u := resp.User
		attrs := ServerRequestAttributes(a.cfg.NodeName, u, r)
		subresources := make([]string, 0, len(attrs))
		allowed := false
		for _, attr := range attrs {
			subresources = append(subresources, attr.GetSubresource())
			decision, _, err := a.authz.Authorize(r.Context(), attr)
			if err != nil {
				a.log.Error("authorization failed", zap.String("user", u.GetName()), zap.String("verb", attr.GetVerb()),
					zap.String("resource", attr.GetResource()), zap.String("subresource", attr.GetSubresource()), zap.Error(err))
				writeText(w, http.StatusInternalServerError, fmt.Sprintf("Authorization error (user=%s, verb=%s, resource=%s, subresource=%s)",
					u.GetName(), attr.GetVerb(), attr.GetResource(), attr.GetSubresource()))
				return
			}
			if decision == authorizer.DecisionAllow {
				allowed = true
				break
			}
		}
		if !allowed {
			// The attributes differ only in their subresource.
			a.log.Debug("request forbidden", zap.String("user", u.GetName()), zap.String("verb", attrs[0].GetVerb()),
				zap.Strings("subresources", subresources))
			writeText(w, http.StatusForbidden, fmt.Sprintf("Forbidden (user=%s, verb=%s, resource=%s, subresource(s)=%v)\n",
				u.GetName(), attrs[0].GetVerb(), attrs[0].GetResource(), subresources))
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, u)))
	})
}

func writeText(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body))
}

type userKey struct{}

// UserFrom returns the user a ServerAuth authenticated, in the context of
// a request Wrap let through.
func UserFrom(ctx context.Context) (user.Info, bool) {
	u, ok := ctx.Value(userKey{}).(user.Info)
	return u, ok
}
