// Command ferretdb runs FerretDB v1 (SQLite backend) as a MongoDB wire-protocol server
// for the local stack (see scripts/services.d/mongo.sh).
//
// It embeds the github.com/FerretDB/FerretDB/ferretdb package instead of building
// upstream's cmd/ferretdb: the module zip lacks build/version/version.txt, so
// `go install .../cmd/ferretdb@v1.24.2` panics at start. Embedded mode skips that
// check; we fill in the FerretDB version from the build info ourselves so that
// buildInfo reports it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/FerretDB/FerretDB/build/version"
	"github.com/FerretDB/FerretDB/ferretdb"
)

const ferretModule = "github.com/FerretDB/FerretDB"

// ferretVersion returns the FerretDB module version this binary was built with ("v1.24.2")
// and whether that module was replaced (scripts/services.d/mongo.sh builds against a copy
// of it with scripts/ferretdb/*.patch applied).
func ferretVersion() (string, bool) {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range bi.Deps {
			if dep.Path == ferretModule {
				return dep.Version, dep.Replace != nil
			}
		}
	}
	return "unknown", false
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	switch strings.ToLower(s) {
	case "warning":
		s = "warn"
	}
	err := l.UnmarshalText([]byte(s))
	return l, err
}

func main() {
	listen := flag.String("listen-addr", "127.0.0.1:27017", "TCP address to listen on (plaintext)")
	listenTLS := flag.String("listen-tls", "", "TCP address to listen on with TLS only; turns the plaintext listener off")
	tlsCert := flag.String("listen-tls-cert-file", "", "the server's certificate (PEM)")
	tlsKey := flag.String("listen-tls-key-file", "", "the server's private key (PEM)")
	tlsCA := flag.String("listen-tls-ca-file", "", "CA whose client certificates are required (mutual TLS)")
	sqliteURL := flag.String("sqlite-url", "file:data/", "SQLite URI of the data directory (trailing slash)")
	logLevel := flag.String("log-level", "info", "log level: debug, info, warn, error")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()

	v, patched := ferretVersion()
	version.Get().Version = v

	if *showVersion {
		note := ""
		if patched {
			note = ", patched"
		}
		fmt.Printf("FerretDB %s (MongoDB wire protocol %s%s)\n", strings.TrimPrefix(v, "v"), version.Get().MongoDBVersion, note)
		return
	}

	level, err := parseLevel(*logLevel)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: bad --log-level %q: %v\n", *logLevel, err)
		os.Exit(2)
	}
	if !strings.HasSuffix(*sqliteURL, "/") {
		fmt.Fprintf(os.Stderr, "ferretdb: --sqlite-url %q must end with '/' (it names a directory)\n", *sqliteURL)
		os.Exit(2)
	}

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(logger)

	listener := ferretdb.ListenerConfig{TCP: *listen}
	if *listenTLS != "" {
		if *tlsCert == "" || *tlsKey == "" {
			fmt.Fprintln(os.Stderr, "ferretdb: --listen-tls needs --listen-tls-cert-file and --listen-tls-key-file")
			os.Exit(2)
		}
		listener = ferretdb.ListenerConfig{
			TLS: *listenTLS, TLSCertFile: *tlsCert, TLSKeyFile: *tlsKey, TLSCAFile: *tlsCA,
		}
		*listen = ""
	}

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  listener,
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: *sqliteURL,
	})
	if err != nil {
		logger.Error("cannot start FerretDB", "error", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	logger.Info("FerretDB starting", "version", v, "patched", patched, "mongodb", version.Get().MongoDBVersion,
		"listen", *listen, "listen-tls", *listenTLS, "sqlite", *sqliteURL, "pid", os.Getpid())

	if err := f.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		logger.Error("FerretDB stopped with an error", "error", err)
		os.Exit(1)
	}
	logger.Info("FerretDB stopped")
}
