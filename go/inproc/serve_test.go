package inproc

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The contract for Go servers (harness/src/micro/go_server.rs): the harness runs the benchmark
// once with PERFLAB_SERVE=1 and the point in PERFLAB_POINT; the benchmark starts its server on
// loopback, prints "perflab-listening ADDR", serves until its stdin is closed (the harness's
// own load engine drives it meanwhile), then prints one sample line (sample_test.go's emit)
// with the server's own metrics, and ends. The experiment's knobs do not reach a server;
// what one needs (http-timeouts' scaled header timeout) comes as its own PERFLAB_ variable.

// serve runs handler as the guide's services do (net/http, an http.Server on a listener of
// its own) until stdin closes; after (nil: none) adds the server's metrics once the load is
// over. By hand (no PERFLAB_SERVE) it serves for the settings' warm-up and measured time.
func serve(b *testing.B, handler http.Handler, after func(m map[string]float64)) {
	serveOn(b, &http.Server{Handler: handler}, nil, after)
}

// serveOn is serve with a server of the caller's settings and the listener wrapped (nil: as
// it is), to count what crosses it.
func serveOn(b *testing.B, server *http.Server, wrap func(net.Listener) net.Listener, after func(m map[string]float64)) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	if wrap != nil {
		go server.Serve(wrap(ln))
	} else {
		go server.Serve(ln)
	}
	// The heap as small as it gets before serving (the port trims its own), and the growth
	// read as soon as serving ends, before the server's own metrics allocate anything.
	debug.FreeOSMemory()
	before := residentBytes()
	fmt.Printf("perflab-listening %s\n", ln.Addr())
	if os.Getenv("PERFLAB_SERVE") != "" {
		io.Copy(io.Discard, os.Stdin)
	} else {
		warmup, duration := sampleTimes(b)
		time.Sleep(warmup + duration)
	}
	server.Close()
	now := residentBytes()
	m := map[string]float64{}
	if before > 0 && now > 0 {
		m["rss_growth_mb"] = float64(max(now, before)-before) / (1024 * 1024)
	}
	if after != nil {
		after(m)
	}
	emit(b, m, nil, nil)
}

// residentBytes is this process's resident memory now (VmRSS), 0 where /proc cannot say.
func residentBytes() uint64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb * 1024
		}
	}
	return 0
}
