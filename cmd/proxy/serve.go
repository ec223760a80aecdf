package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/jitproxy/jitproxy/internal/audit"
	"github.com/jitproxy/jitproxy/internal/authz"
	"github.com/jitproxy/jitproxy/internal/authz/podsecurity"
	"github.com/jitproxy/jitproxy/internal/broker"
	"github.com/jitproxy/jitproxy/internal/intercept"
	"github.com/jitproxy/jitproxy/internal/jit"
	"github.com/jitproxy/jitproxy/internal/metrics"
	"github.com/jitproxy/jitproxy/internal/profile"
)

// Compile-time checks that the concrete backends satisfy the interfaces
// their consumers declare.
var (
	_ intercept.Decider      = (*authz.Engine)(nil)
	_ intercept.Suggester    = (*jit.Policies)(nil)
	_ intercept.PolicySource = (*livePolicies)(nil)
	_ jit.PolicySource       = (*livePolicies)(nil)
	_ intercept.Sessions     = (*jit.Service)(nil)
	_ intercept.Credentials  = (*broker.Broker)(nil)
	_ intercept.Auditor      = (*audit.Recorder)(nil)
	_ jit.Auditor            = (*audit.Recorder)(nil)
	_ broker.Auditor         = (*audit.Recorder)(nil)
	_ policyAuditor          = (*audit.Recorder)(nil)
)

// serveOptions are serve's flags that are not configuration.
type serveOptions struct {
	// check validates the configuration and exits.
	check bool
	// cpuProfile, if set, is the file a CPU profile of the whole run is
	// written to.
	cpuProfile string
}

// serveFlags parses serve's flags over the file and environment.
func serveFlags(args []string, getenv func(string) string, stderr io.Writer) (Config, serveOptions, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", getenv("JITPROXY_CONFIG"), "configuration file (env JITPROXY_CONFIG)")
	stateDir := fs.String("state-dir", "", "state directory for the CA and generated identities (env JITPROXY_STATE_DIR)")
	proxyListen := fs.String("proxy-listen", "", "forward proxy address (env JITPROXY_PROXY_LISTEN)")
	adminListen := fs.String("admin-listen", "", "admin API address (env JITPROXY_ADMIN_LISTEN)")
	metricsListen := fs.String("metrics-listen", "", "metrics and health probe address; empty: none (env JITPROXY_METRICS_LISTEN)")
	redisAddr := fs.String("redis", "", "Redis address; empty: embedded miniredis (env JITPROXY_REDIS_ADDRESS)")
	logLevel := fs.String("log-level", "", "debug, info, warn or error (env JITPROXY_LOG_LEVEL)")
	var opts serveOptions
	fs.BoolVar(&opts.check, "check-config", false, "validate the configuration and exit")
	fs.StringVar(&opts.cpuProfile, "cpu-profile", "", "write a pprof CPU profile of the run to this file, until shutdown")
	if _, err := parseInterspersed(fs, args); err != nil {
		return Config{}, opts, err
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return cfg, opts, err
	}
	cfg.applyEnv(getenv)
	for dst, v := range map[*string]string{
		&cfg.StateDir: *stateDir, &cfg.Proxy.Listen: *proxyListen, &cfg.Admin.Listen: *adminListen, &cfg.Metrics.Listen: *metricsListen,
		&cfg.Redis.Address: *redisAddr, &cfg.Log.Level: *logLevel,
	} {
		if v != "" {
			*dst = v
		}
	}
	return cfg, opts, cfg.validate()
}

func newLogger(c LogConfig, w io.Writer) *slog.Logger {
	var lvl slog.Level
	lvl.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// redisLogger sends go-redis's own messages (dial and pool errors, which
// repeat while Redis is down) to the structured log at debug level: what
// matters of an outage is logged once by the components that see it.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, strings.TrimSpace(fmt.Sprintf(format, v...)), "component", "go-redis")
}

// components are the parts serve builds, in dependency order.
type components struct {
	cfg      Config
	log      *slog.Logger
	ca       *intercept.CA
	redis    redis.UniversalClient
	embedded *miniredis.Miniredis
	recorder *audit.Recorder
	// metrics is nil when there is no metrics listener.
	metrics *metrics.Metrics
	closers []io.Closer
	live    *livePolicies // the Rego and access policies in force
	loader  *policyLoader // loads them at start and reloads them
	targets *builtTargets
	broker  *broker.Broker
	jit     *jit.Service
	proxy   *intercept.Proxy
	api     *jit.API
	// profiles records and reads the profiles of learning grants.
	profiles *profile.Recorder
	// issuers verify the bearer tokens of OIDC providers and clusters.
	issuers map[string]jit.TokenVerifier

	identitiesGenerated string
	caCreated           bool
	// tracer exports spans when tracing is on; nil otherwise.
	tracer *tracer
	// agreement, with a shared Redis, keeps this replica's CA and
	// identities published, so that a replica with others refuses to start.
	agreement *agreement
}

func (c *components) close() {
	if c.tracer != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := c.tracer.shutdown(ctx); err != nil {
			c.log.Warn("flush the last spans", "err", err)
		}
		cancel()
	}
	if c.recorder != nil {
		if err := c.recorder.Close(auditCloseTimeout); err != nil {
			c.log.Error("close the audit sinks", "err", err)
		}
	}
	if c.redis != nil {
		c.redis.Close()
	}
	if c.embedded != nil {
		c.embedded.Close()
	}
	for _, cl := range c.closers {
		cl.Close()
	}
}

// build wires every component from the validated configuration. Nothing
// listens yet.
func build(ctx context.Context, cfg Config, stdout io.Writer, log *slog.Logger) (_ *components, err error) {
	c := &components{cfg: cfg, log: log}
	if cfg.Metrics.Listen != "" {
		c.metrics = metrics.New()
	}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	if c.ca, c.caCreated, err = intercept.LoadOrCreateCA(cfg.StateDir, time.Now()); err != nil {
		return nil, err
	}
	if err := c.openRedis(ctx); err != nil {
		return nil, err
	}
	if c.recorder, err = newRecorder(cfg, stdout, c.redis, log); err != nil {
		return nil, err
	}

	if c.targets, err = buildTargets(&cfg, log); err != nil {
		return nil, err
	}
	c.tracer = newTracer(cfg.Tracing)
	for _, t := range c.targets.targets {
		t.Transport = c.tracer.transport(t.Name, t.Transport)
	}
	c.live = &livePolicies{}
	c.loader = &policyLoader{
		sources: sourcesOf(cfg), targets: c.targets, live: c.live, audit: c.recorder,
		log: log.With("component", "policies"),
	}
	if err := c.loader.start(ctx); err != nil {
		return nil, err
	}
	if c.broker, err = broker.New(broker.Config{
		Redis: c.redis, Providers: c.targets.providers, Audit: c.recorder, KeyPrefix: cfg.Redis.keyPrefix(),
		Metrics: c.brokerMetrics(), Logger: log.With("component", "broker"),
	}); err != nil {
		return nil, err
	}
	ids, generated, err := loadIdentities(&cfg)
	if err != nil {
		return nil, err
	}
	c.identitiesGenerated = generated
	users, err := buildUsers(&cfg, ids)
	if err != nil {
		return nil, err
	}
	identities, err := jit.NewIdentities(ids, users)
	if err != nil {
		return nil, err
	}
	if !cfg.Redis.embedded() {
		c.agreement = newAgreement(c.redis, cfg.Redis.keyPrefix(), c.ca.CertPEM, ids, &cfg)
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := c.agreement.check(actx)
		cancel()
		if errors.Is(err, errDisagree) && (c.caCreated || c.identitiesGenerated != "") {
			err = fmt.Errorf("%w (this replica generated its own CA or identities into %s: copy the other replicas' instead)", err, cfg.StateDir)
		}
		if err != nil {
			return nil, err
		}
	}
	if c.issuers, err = buildIssuers(ctx, &cfg, users, c.targets, log); err != nil {
		return nil, err
	}
	if c.jit, err = jit.New(jit.Config{
		Redis: c.redis, Policies: c.live, AutoApprover: c.live, Identities: identities, Audit: c.recorder,
		Targets: c.targets.names, RunnerGroups: cfg.Admin.RunnerGroups, AdminGroups: cfg.Admin.AdminGroups,
		SessionTTL: cfg.Sessions.TTL, MaxSessionTTL: cfg.Sessions.MaxTTL, KeyPrefix: cfg.Redis.keyPrefix(),
		OnGrantEnd: func(ctx context.Context, g *jit.Grant) { c.broker.Release(ctx, g.ID) },
		Logger:     log.With("component", "jit"),
	}); err != nil {
		return nil, err
	}
	// Grants given under policy versions that are no longer in force are
	// judged now, and whenever a reload changes the set.
	onChange := jit.OnPolicyChange(cmp.Or(cfg.Policies.OnChange, string(jit.RevokeGrants)))
	reconcile := func(ctx context.Context) {
		if _, err := c.jit.ReconcileGrants(ctx, onChange); err != nil {
			log.Error("judge the grants against the changed access policies", "err", err)
		}
	}
	reconcile(ctx)
	c.loader.changed = reconcile
	if c.profiles, err = profile.New(profile.Config{
		Redis: c.redis, KeyPrefix: cfg.Redis.keyPrefix(), Logger: log.With("component", "profiles"),
	}); err != nil {
		return nil, err
	}
	if c.proxy, err = intercept.New(intercept.Config{
		CA: c.ca, Targets: c.targets.targets, Sessions: c.jit, Policies: c.live, Credentials: c.broker,
		Audit: c.recorder, MaxBodyBytes: cfg.Proxy.MaxBodyBytes, MaxTunnelsPerSession: cfg.Proxy.MaxTunnelsPerSession,
		ReadHeaderTimeout: cfg.Proxy.Timeouts.ReadHeader, BodyTimeout: cfg.Proxy.Timeouts.Body,
		IdleTimeout: cfg.Proxy.Timeouts.Idle, UpstreamTimeout: cfg.Proxy.Timeouts.Upstream,
		Metrics: c.targetMetrics(), Profiles: c.profiles, Logger: log.With("component", "proxy"),
	}); err != nil {
		return nil, err
	}
	c.registerCollectors()
	return c, nil
}

func (c *components) openRedis(ctx context.Context) error {
	opts, err := c.cfg.Redis.options()
	if err != nil {
		return err
	}
	if c.cfg.Redis.embedded() {
		c.embedded = miniredis.NewMiniRedis()
		if err := c.embedded.StartAddr("127.0.0.1:0"); err != nil {
			return fmt.Errorf("start embedded redis: %w", err)
		}
		opts.Addrs = []string{c.embedded.Addr()}
	}
	c.redis = redis.NewUniversalClient(opts)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.redis.Ping(pctx).Err(); err != nil {
		return fmt.Errorf("connect to %s: %w", c.cfg.Redis.describe(), err)
	}
	return nil
}

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) (err error) {
	cfg, opts, err := serveFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	// go-redis has one package-wide logger; this command is its only user.
	redis.SetLogger(redisLogger{log})
	if opts.check {
		// Build everything that does not listen, so that policies, targets
		// and identities are checked too; state is not created.
		if err := checkConfig(ctx, cfg); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "configuration is valid")
		return nil
	}
	if opts.cpuProfile != "" {
		stop, perr := startCPUProfile(opts.cpuProfile)
		if perr != nil {
			return perr
		}
		// Deferred first, so it runs last: the profile covers the drain and
		// is complete on disk before serve returns and main exits.
		defer func() { err = errors.Join(err, stop()) }()
	}
	// SIGHUP reloads the policies. Caught from before the build, so that
	// one sent during the start does not end the process (the default) but
	// reloads once the policies are loaded.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	c, err := build(ctx, cfg, stdout, log)
	if err != nil {
		return err
	}
	defer c.close()

	proxyLn, err := net.Listen("tcp", cfg.Proxy.Listen)
	if err != nil {
		return fmt.Errorf("proxy listener: %w", err)
	}
	adminLn, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		proxyLn.Close()
		return fmt.Errorf("admin listener: %w", err)
	}
	var metricsLn net.Listener
	if cfg.Metrics.Listen != "" {
		if metricsLn, err = net.Listen("tcp", cfg.Metrics.Listen); err != nil {
			proxyLn.Close()
			adminLn.Close()
			return fmt.Errorf("metrics listener: %w", err)
		}
		cfg.Metrics.Listen = metricsLn.Addr().String()
	}
	cfg.Proxy.Listen, cfg.Admin.Listen = proxyLn.Addr().String(), adminLn.Addr().String()
	c.cfg = cfg
	c.api = jit.NewAPI(c.jit, jit.APIConfig{
		ProxyURL: cfg.proxyURL(), CACertPEM: c.ca.CertPEM, Targets: c.targets.infos,
		AuditStats: c.recorder.Stats, Issuers: c.issuers, Profiles: profileReader{c.profiles},
		Logger: log.With("component", "admin"),
	})
	page, err := buildPage(c)
	if err != nil {
		proxyLn.Close()
		adminLn.Close()
		if metricsLn != nil {
			metricsLn.Close()
		}
		return err
	}
	at := cfg.Admin.Timeouts
	adminSrv := &http.Server{
		Handler: c.tracer.handler(adminHandler(c.api, page)), ReadHeaderTimeout: at.ReadHeader, ReadTimeout: at.Read, WriteTimeout: at.Write, IdleTimeout: at.Idle,
		ErrorLog: slog.NewLogLogger(log.With("component", "admin").Handler(), slog.LevelWarn),
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return c.proxy.Serve(gctx, proxyLn) })
	g.Go(func() error {
		if err := adminSrv.Serve(adminLn); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), 10*time.Second)
		defer cancel()
		return adminSrv.Shutdown(sctx)
	})
	if metricsLn != nil {
		g.Go(func() error { return serveHTTP(gctx, c.metricsServer(), metricsLn) })
	}
	g.Go(func() error { return c.jit.Run(gctx) })
	g.Go(func() error { return c.profiles.Run(gctx) })
	if c.agreement != nil {
		g.Go(func() error { return c.agreement.keep(gctx, log) })
	}
	g.Go(func() error { return c.loader.run(gctx, hup, cfg.Policies.WatchInterval) })

	printBanner(stderr, c)
	log.Info("jitproxy ready", "proxy", "http://"+cfg.Proxy.Listen, "admin", "http://"+cfg.Admin.Listen,
		"metrics", cfg.Metrics.Listen, "state_dir", cfg.StateDir, "version", version)
	err = g.Wait()
	log.Info("jitproxy stopped")
	return err
}

// startCPUProfile creates path and starts writing a CPU profile to it; stop
// ends the profile and closes the file. Only one CPU profile can run in a
// process at a time.
func startCPUProfile(path string) (stop func() error, err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile %s: %w", path, err)
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return fmt.Errorf("cpu profile %s: %w", path, err)
		}
		return nil
	}, nil
}

func checkConfig(ctx context.Context, cfg Config) error {
	discard := slog.New(slog.DiscardHandler)
	bt, err := buildTargets(&cfg, discard)
	if err != nil {
		return err
	}
	// The policies as a start or a reload would load them.
	files, err := sourcesOf(cfg).read()
	if err != nil {
		return err
	}
	l := &policyLoader{sources: sourcesOf(cfg), targets: bt, log: discard}
	if _, _, err = l.compile(ctx, files); err != nil {
		return err
	}
	// The users against the static identities there are, without
	// generating local ones.
	ids := make([]jit.Identity, 0, len(cfg.Admin.Identities))
	for _, ic := range cfg.Admin.Identities {
		ids = append(ids, jit.Identity{Name: ic.Name})
	}
	if fromFile, err := readIdentitiesFile(cfg.identitiesFile()); err == nil {
		ids = append(ids, fromFile...)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	_, err = buildUsers(&cfg, ids)
	return err
}

// newEngine compiles the Rego policies in fsys with the builtins they may
// call: jitproxy.pod_security.
func newEngine(ctx context.Context, fsys fs.FS) (*authz.Engine, error) {
	bs, err := policyBuiltins()
	if err != nil {
		return nil, err
	}
	return authz.New(ctx, authz.Config{Policies: fsys, Builtins: bs})
}

// policyBuiltins are the Go functions the Rego policies may call, for the
// engine and for the policies' tests alike.
func policyBuiltins() ([]authz.Builtin, error) {
	ps, err := podsecurity.New()
	if err != nil {
		return nil, err
	}
	return []authz.Builtin{ps.Builtin()}, nil
}

func dirOr(dir string, def fs.FS) fs.FS {
	if dir == "" {
		return def
	}
	return os.DirFS(dir)
}
