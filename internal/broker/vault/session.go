package vault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
)

// tokenRefreshWindow: jitproxy's own Vault token is renewed or replaced when
// less than this is left.
const tokenRefreshWindow = time.Minute

// LoginFunc obtains jitproxy's Vault token, for example with the
// kubernetes auth method.
type LoginFunc func(ctx context.Context, c *vaultapi.Client) (*vaultapi.Secret, error)

// session keeps jitproxy's token for a Vault client, for every provider of
// this package: it logs in (or looks the token up) at first use, renews or
// replaces the token before it expires, and logs in again when Vault
// refuses it. It is safe for concurrent use.
type session struct {
	client *vaultapi.Client
	login  LoginFunc // nil: the client's token is used as it is, renewed when renewable
	now    func() time.Time
	logger *slog.Logger

	mu           sync.Mutex
	haveToken    bool
	tokenExpires time.Time // zero: does not expire
	renewable    bool
}

func newSession(c *vaultapi.Client, login LoginFunc, now func() time.Time, logger *slog.Logger) *session {
	return &session{client: c, login: login, now: now, logger: logger}
}

// write writes data to path with the token.
func (s *session) write(ctx context.Context, path string, data map[string]any) (*vaultapi.Secret, error) {
	var sec *vaultapi.Secret
	err := s.withToken(ctx, func() error {
		var err error
		sec, err = s.client.Logical().WriteWithContext(ctx, path, data)
		return err
	})
	return sec, err
}

// revoke revokes a lease; an empty lease ID is nothing to revoke.
func (s *session) revoke(ctx context.Context, leaseID string) error {
	if leaseID == "" {
		return nil
	}
	if err := s.withToken(ctx, func() error { return s.client.Sys().RevokeWithContext(ctx, leaseID) }); err != nil {
		return fmt.Errorf("vault revoke lease %s: %w", leaseID, err)
	}
	return nil
}

// withToken makes call with jitproxy's Vault token. When Vault refuses a
// token that was not issued for this call (Vault lost its storage, or the
// token was revoked early) and login can replace it, it logs in again and
// makes call once more, so that no request fails for a stale token. A
// refusal of a fresh token is a real denial and is returned.
func (s *session) withToken(ctx context.Context, call func() error) error {
	fresh, err := s.ensureToken(ctx)
	if err != nil {
		return err
	}
	token := s.client.Token()
	err = call()
	if !isDenial(err) {
		return err
	}
	s.forgetToken(token)
	if fresh || s.login == nil {
		return err
	}
	if _, err := s.ensureToken(ctx); err != nil {
		return err
	}
	return call()
}

// ensureToken logs in, or renews the token, when it is missing or close to
// expiry. It reports whether it logged in.
func (s *session) ensureToken(ctx context.Context) (loggedIn bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if s.haveToken && (s.tokenExpires.IsZero() || now.Before(s.tokenExpires.Add(-tokenRefreshWindow))) {
		return false, nil
	}
	if s.login != nil {
		sec, err := s.login(ctx, s.client)
		if err != nil {
			return false, fmt.Errorf("vault login: %w", err)
		}
		if sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
			return false, errors.New("vault login: answer without a token")
		}
		s.client.SetToken(sec.Auth.ClientToken)
		s.setToken(now, sec.Auth.LeaseDuration, sec.Auth.Renewable)
		return true, nil
	}
	if s.haveToken && s.renewable {
		sec, err := s.client.Auth().Token().RenewSelfWithContext(ctx, 0)
		if err == nil && sec != nil && sec.Auth != nil {
			s.setToken(now, sec.Auth.LeaseDuration, sec.Auth.Renewable)
			return false, nil
		}
		s.logger.Warn("renew vault token", "err", err)
	}
	sec, err := s.client.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		return false, fmt.Errorf("vault token lookup: %w", err)
	}
	ttl, _ := sec.TokenTTL()
	renewable, _ := sec.TokenIsRenewable()
	s.setToken(now, int(ttl.Seconds()), renewable)
	if s.haveToken && ttl > 0 && ttl < tokenRefreshWindow && !renewable {
		return false, errors.New("vault token is about to expire and cannot be renewed")
	}
	return false, nil
}

func (s *session) setToken(now time.Time, leaseSeconds int, renewable bool) {
	s.haveToken, s.renewable = true, renewable
	s.tokenExpires = time.Time{}
	if leaseSeconds > 0 {
		s.tokenExpires = now.Add(time.Duration(leaseSeconds) * time.Second)
	}
}

// isDenial reports whether Vault refused the request with 403, which is
// also its answer to a token it does not know.
func isDenial(err error) bool {
	var re *vaultapi.ResponseError
	return errors.As(err, &re) && re.StatusCode == 403
}

// forgetToken makes the next call log in (or look the token up) again,
// unless another call has replaced the refused token already.
func (s *session) forgetToken(refused string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client.Token() == refused {
		s.haveToken = false
	}
}
