// Command calico-libnetwork is the Docker network and IPAM plugin for Calico.
//
//	calico-libnetwork                        run the daemon (configured by the environment)
//	calico-libnetwork --version              print the version
//	calico-libnetwork --uninstall [--force]  remove everything the plugin put on this host
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/projectcalico/calico-libnetwork/internal/config"
	"github.com/projectcalico/calico-libnetwork/internal/daemon"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	flags := flag.NewFlagSet("calico-libnetwork", flag.ContinueOnError)
	showVersion := flags.Bool("version", false, "print the version and exit")
	uninstall := flags.Bool("uninstall", false, "remove the plugin's firewall, routes, VXLAN device and container interfaces from this host")
	force := flags.Bool("force", false, "with --uninstall: even while containers use the plugin, without reading the datastore")
	if err := flags.Parse(os.Args[1:]); errors.Is(err, flag.ErrHelp) {
		return
	} else if err != nil {
		os.Exit(2)
	}
	switch args := flags.Args(); {
	case *showVersion || (len(args) == 1 && args[0] == "version"):
		fmt.Println(version)
		return
	case len(args) > 0 || (*force && !*uninstall):
		fmt.Fprintln(os.Stderr, "calico-libnetwork: unexpected arguments; usage:")
		flags.PrintDefaults()
		os.Exit(2)
	}
	cfg, err := config.FromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, "calico-libnetwork: configuration error:", err)
		os.Exit(2)
	}
	level := slog.LevelInfo
	if cfg.Debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if *uninstall {
		if err := daemon.Uninstall(ctx, cfg, *force, log); err != nil {
			fmt.Fprintln(os.Stderr, "calico-libnetwork --uninstall:", err)
			os.Exit(1)
		}
		return
	}
	if err := daemon.Run(ctx, cfg, version, log); err != nil {
		log.Error("calico-libnetwork stopped", "error", err.Error())
		os.Exit(1)
	}
}
