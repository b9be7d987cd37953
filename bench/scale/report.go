package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// The goals of issue 14.
const (
	goalSync  = 10 * time.Second
	goalRSS   = 400.0 // MB
	goalRatio = 2.0   // label latency, large cluster over small
)

func median(d []time.Duration) time.Duration { return percentile(d, 50) }

// percentile is the nearest-rank percentile of d (0 when empty).
func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	rank := (p*len(s) + 99) / 100
	return s[max(rank, 1)-1]
}

// latencies are the probes' latencies, with how many were not seen (timed out, counted as the timeout,
// or their write failed, left out).
func latencies(samples []sample) (all []time.Duration, missed int) {
	for _, s := range samples {
		if s.Error == "" {
			all = append(all, s.Latency)
		}
		if !s.OK {
			missed++
		}
	}
	return all, missed
}

func ms(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
}

func latencyCell(samples []sample) string {
	lat, missed := latencies(samples)
	if len(lat) == 0 {
		return "-"
	}
	cell := ms(lat[0])
	if len(lat) > 1 {
		cell = fmt.Sprintf("%s / %s / %s (n=%d)", ms(median(lat)), ms(percentile(lat, 90)), ms(slices.Max(lat)), len(lat))
	}
	if missed > 0 {
		cell += fmt.Sprintf(", %d not seen in time or not written", missed)
	}
	return cell
}

// cpuCell is the CPU the daemon and its commands used over a window, in percent of one core.
func cpuCell(w window) string {
	own, children := w.percent()
	return fmt.Sprintf("%.0f %% + %.0f %% (nft, iptables)", own, children)
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

// report writes the phases side by side as a markdown table, then the goals, judged on the last phase
// (and on the first as the small-cluster reference).
func report(w io.Writer, phases []*phaseResult) {
	row := func(name string, cell func(*phaseResult) string) {
		cells := []string{name}
		for _, p := range phases {
			cells = append(cells, cell(p))
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
	header := []string{""}
	for _, p := range phases {
		header = append(header, p.Name)
	}
	fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(header, " | "), strings.Repeat("---|", len(header)))
	row("nodes / remote endpoints / policies / local endpoints", func(p *phaseResult) string {
		return fmt.Sprintf("%d / %d / %d / %d", p.Sizes.Nodes, p.Sizes.Endpoints, p.Sizes.Policies, p.Sizes.Local)
	})
	row("etcd load: keys, MB, time", func(p *phaseResult) string {
		return fmt.Sprintf("%d, %.0f MB, %s", p.Load.Keys, float64(p.Load.Bytes)/1e6, ms(p.Load.Took))
	})
	row("initial sync: start to /healthz ok", func(p *phaseResult) string { return ms(p.Sync) })
	row("... as the daemon logs it (dataplane synced)", func(p *phaseResult) string { return ms(p.SyncLog) })
	row("CPU time to sync: daemon + its commands", func(p *phaseResult) string {
		return fmt.Sprintf("%.1f s + %.1f s (nft, iptables)", p.SyncCPU.CPU, p.SyncCPU.ChildCPU)
	})
	row("RSS at sync (peak so far)", func(p *phaseResult) string {
		return fmt.Sprintf("%.0f MB (%.0f MB)", p.AtSync.RSS, p.AtSync.HWM)
	})
	row("idle CPU after sync", func(p *phaseResult) string {
		return fmt.Sprintf("%s over %s", cpuCell(p.Idle), ms(p.Idle.Took))
	})
	row("label change to kernel set: median / p90 / max", func(p *phaseResult) string { return latencyCell(p.Probes) })
	churned := slices.ContainsFunc(phases, func(p *phaseResult) bool { return p.Churn.For > 0 })
	churnRow := func(name string, cell func(*phaseResult) string) {
		if churned {
			row(name, func(p *phaseResult) string {
				if p.Churn.For == 0 {
					return "-"
				}
				return cell(p)
			})
		}
	}
	churnRow("churn: changes/s made (failed)", func(p *phaseResult) string {
		return fmt.Sprintf("%.1f (%d)", p.Churn.Rate, p.Churn.Failed)
	})
	churnRow("churn: CPU", func(p *phaseResult) string { return cpuCell(p.Churn.window) })
	churnRow("churn: label change to kernel set: median / p90 / max", func(p *phaseResult) string { return latencyCell(p.Churn.Probes) })
	churnRow("churn: probe right after the churn", func(p *phaseResult) string { return latencyCell([]sample{p.Churn.Drain}) })
	churnRow("churn: keeps up", func(p *phaseResult) string { return fmt.Sprint(p.Churn.KeepsUp) })
	row("RSS at end (peak)", func(p *phaseResult) string { return fmt.Sprintf("%.0f MB (%.0f MB)", p.End.RSS, p.End.HWM) })
	row("kernel: sets / elements / chains / rules", func(p *phaseResult) string {
		return fmt.Sprintf("%d / %d / %d / %d", p.Kernel.Sets, p.Kernel.Elements, p.Kernel.Chains, p.Kernel.Rules)
	})
	row("`nft -j list table inet calico` (the 10 s drift check's read)", func(p *phaseResult) string { return ms(p.Kernel.ListTook) })
	row("GET /metrics", func(p *phaseResult) string { return ms(p.Scrape) })
	row("etcd RSS", func(p *phaseResult) string { return fmt.Sprintf("%.0f MB", p.EtcdRSS) })

	big := phases[len(phases)-1]
	fmt.Fprintf(w, "\nGoals, for %s:\n", big.Name)
	fmt.Fprintf(w, "- initial sync under %s: %s (%s)\n", goalSync, ms(big.Sync), verdict(big.Sync < goalSync))
	peak := max(big.AtSync.HWM, big.End.HWM)
	fmt.Fprintf(w, "- daemon RSS under %.0f MB: peak %.0f MB, %.0f MB after sync, %.0f MB at end (%s)\n",
		goalRSS, peak, big.AtSync.RSS, big.End.RSS, verdict(peak < goalRSS))
	if len(phases) > 1 {
		small, _ := latencies(phases[0].Probes)
		large, _ := latencies(big.Probes)
		ratio := float64(median(large)) / float64(median(small))
		fmt.Fprintf(w, "- label change within %.0fx of %s: median %s against %s, %.1fx (%s)\n", goalRatio,
			phases[0].Name, ms(median(large)), ms(median(small)), ratio, verdict(ratio <= goalRatio))
	}
	if big.Churn.For > 0 {
		fmt.Fprintf(w, "- %.0f endpoint changes/s sustained: %.1f/s made over %s, keeps up: %v (%s)\n",
			big.Churn.Target, big.Churn.Rate, ms(big.Churn.For), big.Churn.KeepsUp, verdict(big.Churn.KeepsUp))
	}
}
