// Command wsload is the WebSocket load client of the benchmark.
//
//	wsload -mode echo  -url ws://127.0.0.1:PORT/ws/echo -c 64 -d 10 -size 32
//	    Opens c connections, then each one sends a message, waits for its echo and sends again
//	    (a closed loop) for d seconds. Prints one line:
//	    WSLOAD mode=echo conns=64 ... msgs_per_s=N p50_us=N p99_us=N errors=N
//	wsload -mode idle  -url ... -c 10000 -d 120
//	    Opens c connections and holds them, idle, until SIGTERM/SIGINT or d seconds. Prints
//	    "WSLOAD mode=idle phase=ready ..." once all dials finished, and a final line on exit.
//	wsload -mode probe -url ...
//	    One connection, one message; exit status 0 if the echo came back unchanged.
//
// All output lines start with WSLOAD and are space-separated key=value pairs.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// Latency histogram: 1 µs buckets below 10 ms, then 1 ms buckets up to 10 s.
const (
	fineBuckets   = 10000
	coarseBuckets = 10000
)

type histogram struct {
	counts [fineBuckets + coarseBuckets + 1]uint32
	n      uint64
}

func (h *histogram) add(d time.Duration) {
	us := d.Microseconds()
	var i int64
	switch {
	case us < fineBuckets:
		i = us
	case us/1000 < coarseBuckets:
		i = fineBuckets + us/1000 - fineBuckets/1000
	default:
		i = fineBuckets + coarseBuckets
	}
	h.counts[i]++
	h.n++
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
}

// quantile returns the upper bound, in µs, of the bucket holding quantile q.
func (h *histogram) quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += uint64(c)
		if seen >= rank {
			if i < fineBuckets {
				return int64(i) + 1
			}
			return (int64(i-fineBuckets) + fineBuckets/1000 + 1) * 1000
		}
	}
	return -1
}

func raiseFileLimit() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	lim.Cur = lim.Max
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	return lim.Cur
}

func newDialer() *websocket.Dialer {
	return &websocket.Dialer{
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   1024,
		WriteBufferSize:  1024,
	}
}

// dialAll opens n connections with at most par dials in flight.
func dialAll(url string, n, par int) ([]*websocket.Conn, int, error) {
	d := newDialer()
	conns := make([]*websocket.Conn, n)
	var failed int64
	var firstErr atomic.Value
	next := int64(-1)
	var wg sync.WaitGroup
	for w := 0; w < par && w < n; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := atomic.AddInt64(&next, 1)
				if i >= int64(n) {
					return
				}
				c, resp, err := d.Dial(url, nil)
				if resp != nil && resp.Body != nil {
					resp.Body.Close()
				}
				if err != nil {
					atomic.AddInt64(&failed, 1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	live := conns[:0]
	for _, c := range conns {
		if c != nil {
			live = append(live, c)
		}
	}
	var err error
	if e, ok := firstErr.Load().(error); ok {
		err = e
	}
	return live, int(failed), err
}

func payload(size int) []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	p := make([]byte, size)
	for i := range p {
		p[i] = alphabet[i%len(alphabet)]
	}
	return p
}

func errWord(err error) string {
	if err == nil {
		return "none"
	}
	return strings.NewReplacer(" ", "_", "=", ":").Replace(err.Error())
}

func runEcho(url string, conns, seconds, size int, msgType int) int {
	cs, failed, derr := dialAll(url, conns, 16)
	if len(cs) == 0 {
		fmt.Printf("WSLOAD mode=echo conns=0 failed=%d error=%s\n", failed, errWord(derr))
		return 1
	}
	msg := payload(size)
	deadline := time.Now().Add(time.Duration(seconds) * time.Second)
	var wg sync.WaitGroup
	hists := make([]*histogram, len(cs))
	errs := make([]int, len(cs))
	start := time.Now()
	for i, c := range cs {
		hists[i] = new(histogram)
		wg.Add(1)
		go func(i int, c *websocket.Conn) {
			defer wg.Done()
			h := hists[i]
			for {
				t0 := time.Now()
				if !t0.Before(deadline) {
					return
				}
				c.SetReadDeadline(t0.Add(10 * time.Second))
				if err := c.WriteMessage(msgType, msg); err != nil {
					errs[i]++
					return
				}
				mt, got, err := c.ReadMessage()
				if err != nil {
					errs[i]++
					return
				}
				if mt != msgType || !bytes.Equal(got, msg) {
					errs[i]++
				}
				h.add(time.Since(t0))
			}
		}(i, c)
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	total := new(histogram)
	nerr := 0
	for i := range cs {
		total.merge(hists[i])
		nerr += errs[i]
		cs[i].WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		cs[i].Close()
	}
	fmt.Printf("WSLOAD mode=echo conns=%d failed=%d size=%d duration_s=%.2f messages=%d msgs_per_s=%.1f p50_us=%d p99_us=%d p999_us=%d max_us=%d errors=%d\n",
		len(cs), failed, size, elapsed, total.n, float64(total.n)/elapsed,
		total.quantile(0.50), total.quantile(0.99), total.quantile(0.999), total.quantile(1.0), nerr)
	return 0
}

func runIdle(url string, conns, seconds int) int {
	limit := raiseFileLimit()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	t0 := time.Now()
	cs, failed, derr := dialAll(url, conns, 32)
	var alive int64 = int64(len(cs))
	// One reader per connection notices a close by the server (and answers pings).
	for _, c := range cs {
		go func(c *websocket.Conn) {
			for {
				if _, _, err := c.NextReader(); err != nil {
					atomic.AddInt64(&alive, -1)
					return
				}
			}
		}(c)
	}
	fmt.Printf("WSLOAD mode=idle phase=ready opened=%d failed=%d dial_s=%.2f nofile=%d error=%s\n",
		len(cs), failed, time.Since(t0).Seconds(), limit, errWord(derr))
	select {
	case <-sig:
	case <-time.After(time.Duration(seconds) * time.Second):
	}
	fmt.Printf("WSLOAD mode=idle phase=done opened=%d alive=%d failed=%d\n",
		len(cs), atomic.LoadInt64(&alive), failed)
	return 0
}

func runProbe(url string, size int, msgType int) int {
	d := newDialer()
	d.HandshakeTimeout = 2 * time.Second
	c, resp, err := d.Dial(url, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		fmt.Printf("WSLOAD mode=probe ok=0 error=%s\n", errWord(err))
		return 1
	}
	defer c.Close()
	msg := payload(size)
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if err := c.WriteMessage(msgType, msg); err != nil {
		fmt.Printf("WSLOAD mode=probe ok=0 error=%s\n", errWord(err))
		return 1
	}
	mt, got, err := c.ReadMessage()
	if err != nil || mt != msgType || !bytes.Equal(got, msg) {
		fmt.Printf("WSLOAD mode=probe ok=0 error=%s\n", errWord(err))
		return 1
	}
	c.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	fmt.Println("WSLOAD mode=probe ok=1")
	return 0
}

func main() {
	mode := flag.String("mode", "echo", "echo, idle or probe")
	url := flag.String("url", "ws://127.0.0.1:8080/ws/echo", "WebSocket URL (loopback only)")
	conns := flag.Int("c", 64, "connections")
	seconds := flag.Int("d", 10, "seconds to run (echo) or the longest hold (idle)")
	size := flag.Int("size", 32, "message size in bytes")
	typ := flag.String("type", "text", "message type: text or binary")
	flag.Parse()

	msgType := websocket.TextMessage
	if *typ == "binary" {
		msgType = websocket.BinaryMessage
	}
	if err := checkLoopback(*url); err != nil {
		fmt.Fprintln(os.Stderr, "wsload:", err)
		os.Exit(2)
	}
	switch *mode {
	case "echo":
		os.Exit(runEcho(*url, *conns, *seconds, *size, msgType))
	case "idle":
		os.Exit(runIdle(*url, *conns, *seconds))
	case "probe":
		os.Exit(runProbe(*url, *size, msgType))
	}
	fmt.Fprintln(os.Stderr, "wsload: unknown -mode", *mode)
	os.Exit(2)
}

// checkLoopback refuses any target that is not a loopback address: this is a benchmark tool.
func checkLoopback(rawURL string) error {
	rest := strings.TrimPrefix(strings.TrimPrefix(rawURL, "ws://"), "wss://")
	hostport := rest
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		hostport = rest[:i]
	}
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("target %q is not a loopback address", host)
	}
	return nil
}
