package inproc

import (
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// userBody is the port's body (experiments/http-client-pool): a JSON object of 512 bytes.
func userBody() []byte {
	head, tail := `{"id":1,"name":"user 1","email":"user1@example.com","bio":"`, `"}`
	return []byte(head + strings.Repeat("x", 512-len(head)-len(tail)) + tail)
}

// timeWaitSockets counts the sockets in TIME_WAIT with port as local or remote port
// (/proc/net/tcp and tcp6), as the port's time_wait_sockets does.
func timeWaitSockets(port int) (int, error) {
	n := 0
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(file)
		if os.IsNotExist(err) {
			continue
		} else if err != nil {
			return 0, err
		}
		n += countTimeWait(string(data), port)
	}
	return n, nil
}

// countTimeWait counts the lines of a /proc/net/tcp table in TIME_WAIT (st 06) with port as
// local or remote port.
func countTimeWait(table string, port int) int {
	portOf := func(addr string) int {
		p, _ := strconv.ParseUint(addr[strings.LastIndexByte(addr, ':')+1:], 16, 16)
		return int(p)
	}
	n := 0
	for i, line := range strings.Split(table, "\n") {
		fields := strings.Fields(line)
		if i == 0 || len(fields) < 4 || fields[3] != "06" {
			continue
		}
		if portOf(fields[1]) == port || portOf(fields[2]) == port {
			n++
		}
	}
	return n
}

// BenchmarkHTTPClientPool is a whole-sample benchmark (sample_test.go) measuring what the
// port's run measures (experiments/http-client-pool) with Go's own http.Transport: a service on
// loopback in this process (net/http, a new one per sample) answering GET /users/{id} with 512
// bytes of JSON, clients (the point) sharing one http.Client of the variant's; the connections
// the server accepted and the TIME_WAIT sockets on its port are counted.
func BenchmarkHTTPClientPool(b *testing.B) {
	for _, name := range []string{"no-keep-alive", "default-transport", "guide-pool"} {
		b.Run(name, func(b *testing.B) {
			clients := point(b, 16)
			body := userBody()
			var accepted, answered atomic.Int64
			mux := http.NewServeMux()
			mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
				answered.Add(1)
				w.Header().Set("Content-Type", "application/json")
				w.Write(body)
			})
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			server := &http.Server{Handler: mux, ConnState: func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					accepted.Add(1)
				}
			}}
			go server.Serve(ln)
			port := ln.Addr().(*net.TCPAddr).Port
			url := "http://" + ln.Addr().String() + "/users/1"
			client := map[string]func() *http.Client{
				"no-keep-alive": NoKeepAliveClient, "default-transport": DefaultTransportClient, "guide-pool": NewOptimizedHTTPClient,
			}[name]()
			closedLoop(b, clients, func(int) operation {
				return func() string {
					res, err := client.Get(url)
					if err != nil {
						return errorKind(err)
					}
					n, err := io.Copy(io.Discard, res.Body)
					res.Body.Close()
					switch {
					case err != nil:
						return errorKind(err)
					case res.StatusCode != http.StatusOK:
						return "status " + strconv.Itoa(res.StatusCode)
					case n != int64(len(body)):
						return "short body"
					}
					return ""
				}
			}, func(m map[string]float64, _ map[string]uint64, _ float64) {
				// Read before anything closes: what the traffic itself left.
				if tw, err := timeWaitSockets(port); err == nil {
					m["time_wait"] = float64(tw)
				}
				m["connections_accepted"] = float64(accepted.Load())
				if a := answered.Load(); a > 0 {
					m["connections_per_1k"] = 1000 * float64(accepted.Load()) / float64(a)
				}
			})
			server.Close()
		})
	}
}

func TestTheServiceAnswersThePortsBody(t *testing.T) {
	if n := len(userBody()); n != 512 {
		t.Fatalf("the body is %d bytes", n)
	}
	table := "  sl  local_address rem_address   st\n   0: 0100007F:1F90 0100007F:C350 06 0\n   1: 0100007F:1F90 0100007F:C351 01 0\n   2: 0100007F:C352 0100007F:1F90 06 0\n   3: 0100007F:0050 0100007F:C353 06 0\n"
	if n := countTimeWait(table, 0x1F90); n != 2 {
		t.Fatalf("%d sockets in TIME_WAIT on port 8080, want 2 (one local, one remote; not the established one)", n)
	}
	if c := NewOptimizedHTTPClient().Transport.(*http.Transport); c.MaxIdleConnsPerHost != 20 || c.MaxConnsPerHost != 50 {
		t.Fatal("the guide's transport")
	}
	if DefaultTransportClient().Transport.(*http.Transport).MaxIdleConnsPerHost != 0 {
		t.Fatal("the default transport leaves MaxIdleConnsPerHost to DefaultMaxIdleConnsPerHost (2)")
	}
}
